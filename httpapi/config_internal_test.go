package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
)

// TestConfigFetchesKeepOnlyWhatWasGiven: the index and document URLs a
// node hands out are served from its memo, and fetches of URLs it never
// handed out (made-up sets of changes, made-up digests) are refused
// without being kept, so they cannot crowd out what devices were given.
func TestConfigFetchesKeepOnlyWhatWasGiven(t *testing.T) {
	load := deliverytest.Configured(1, 2, 200, 4, 8)
	live := delivery.NewLive(load)
	if err := live.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &Server{live: live, links: links{base: "http://mds"}}
	s.answers = answerSet{links: &s.links}
	c := live.Current().Config(deliverytest.RefKey(0))
	if c == nil || len(c.Changes) != 8 {
		t.Fatalf("the load's configuration: %+v", c)
	}
	given := s.answers.configMemo(c)
	fetch := func(url string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", url, nil)
		r.SetPathValue("sha256", url[len("http://mds/client/v1/config/"):len("http://mds/client/v1/config/")+64])
		s.serveConfig(w, r)
		return w.Code
	}
	kept := func() (int, int) { return len(*given.indexes.Load()), len(*given.docs.Load()) }

	// What a check hands out is kept once and served.
	var section configSection
	sec := s.answers.config(delivery.ConfigChoice{Config: c, Admitted: 0b101})
	if (*given.indexes.Load())[0b101] == nil {
		t.Fatal("the index of a set a check was given is not kept")
	}
	if err := json.Unmarshal(sec.body, &section); err != nil {
		t.Fatal(err)
	}
	indexes, docs := kept()
	if code := fetch(section.URL); code != http.StatusOK {
		t.Fatalf("the index handed out: %d", code)
	}
	// Made-up sets and digests: refused, nothing kept.
	for set := range 200 {
		var gray string
		for i := range 8 {
			if set&(1<<i) != 0 {
				gray += fmt.Sprintf("%d,", c.Changes[i].Task.ID)
			}
		}
		if len(gray) > 0 {
			gray = gray[:len(gray)-1]
		}
		url := fmt.Sprintf("http://mds/client/v1/config/%064x?app=%s&gray=%s", set, deliverytest.RefKey(0), gray)
		if code := fetch(url); code != http.StatusNotFound {
			t.Fatalf("a made-up index %s: %d", url, code)
		}
		url = fmt.Sprintf("http://mds/client/v1/config/%064x?app=%s&ns=ns00&version=7&gray=", set, deliverytest.RefKey(0))
		if code := fetch(url); code != http.StatusNotFound {
			t.Fatalf("a made-up document %s: %d", url, code)
		}
	}
	if i, d := kept(); i != indexes || d != docs {
		t.Errorf("made-up fetches left %d indexes and %d documents kept, where checks had left %d and %d", i, d, indexes, docs)
	}
}
