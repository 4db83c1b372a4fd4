package delivery_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/gray"
)

// TestConfigDecide: the changes a check finds in force for a device are
// those explain finds matching, one by one through the gray engine,
// whatever their targeting: sticky percentages (decided from one bucket),
// ramps, stickiness by user, rules.
func TestConfigDecide(t *testing.T) {
	load := deliverytest.Configured(2, 2, 100, 4, 12)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, task := range load.Set.Tasks {
		if task.Kind != mds.KindConfig {
			continue
		}
		switch task.ID % 5 {
		case 0:
			task.Targeting.Rules = []mds.Rule{{Field: mds.FieldPlatform, Operator: mds.OpIn, Values: []string{"android"}}}
		case 1:
			task.Targeting.Rollout.Ramp = []mds.RampStep{{At: start, Percent: 10}, {At: start.Add(48 * time.Hour), Percent: 60}}
		case 2:
			task.Targeting.Rollout.Stickiness = mds.StickyUser
		}
	}
	s := delivery.Compile(load.Set, nil)
	for i := range 600 {
		d := deliverytest.RefDevice(i, 2)
		switch i % 7 {
		case 0:
			d.UserID = ""
		case 1:
			d.DeviceID = fmt.Sprintf("other-%d", i)
		}
		for _, at := range []time.Time{start.Add(time.Hour), start.Add(72 * time.Hour)} {
			in := gray.NewInput(d, netip.Addr{}, at)
			var dec delivery.Decision
			if err := s.Evaluate(&in, nil, &dec); err != nil {
				t.Fatal(err)
			}
			ex, err := s.Explain(&in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := s.ExplainConfig(&in, ex); want.Admitted != dec.Config.Admitted || want.Config != dec.Config.Config {
				t.Fatalf("device %d at %s: checked in %b, explained %b", i, at, dec.Config.Admitted, want.Admitted)
			}
		}
	}
}

// TestConfigCohort: k sticky percentages of one app's configuration put
// its devices in at most k+1 sets of changes, as they share the app's
// cohort (mds.ConfigCohort): each device is in the changes whose
// percentage is above its bucket.
func TestConfigCohort(t *testing.T) {
	const changes = 12
	s := delivery.Compile(deliverytest.Configured(1, 2, 100, 4, changes).Set, nil)
	sets := map[uint64]bool{}
	for i := range 5000 {
		in := gray.NewInput(deliverytest.RefDevice(i, 1), netip.Addr{}, now)
		var dec delivery.Decision
		if err := s.Evaluate(&in, nil, &dec); err != nil {
			t.Fatal(err)
		}
		sets[dec.Config.Admitted] = true
	}
	if len(sets) < changes/2 || len(sets) > changes+1 {
		t.Errorf("5,000 devices fell in %d sets of %d changes", len(sets), changes)
	}
}
