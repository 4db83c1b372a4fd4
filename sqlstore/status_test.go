package sqlstore

import (
	"slices"
	"testing"

	"github.com/mds-dev/mds"
)

// TestStatusLists: the statuses SQL names are those the domain's methods
// say.
func TestStatusLists(t *testing.T) {
	all := []mds.Status{mds.StatusDraft, mds.StatusLive, mds.StatusPaused, mds.StatusStopped, mds.StatusRolledBack}
	for _, s := range all {
		if got := slices.Contains(finished, any(s)); got != s.Finished() {
			t.Errorf("status %s: in finished %v, Finished() %v", s, got, s.Finished())
		}
		if got := slices.Contains(delivered, any(s)); got != s.Delivered() {
			t.Errorf("status %s: in delivered %v, Delivered() %v", s, got, s.Delivered())
		}
	}
}
