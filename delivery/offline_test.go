package delivery_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/version"
)

// offline adds version v of offline package id to the fixture, delivered
// by a task of status with targeting tg, with ready deltas from the
// versions in from.
func (f *fixture) offline(a *mds.App, id, v string, typ mds.OfflineType, status mds.Status, tg mds.Targeting, spec mds.OfflineSpec, from ...string) *mds.Artifact {
	spec.Package, spec.Type = id, typ
	spec.Host, spec.Entry, spec.Fallback = "https://"+id+".example", "/index.html", "https://cdn.example/"+id+"/"
	spec.KeyID, spec.Files = strings.Repeat("cd", 32), 1
	spec.SHA256, spec.Size = fmt.Sprintf("%064x", f.nextID+1), 10_000
	spec.CanonicalSHA256, spec.CanonicalSize = fmt.Sprintf("%064x", f.nextID+2), 20_000
	art := &mds.Artifact{ID: f.id(), AppID: a.ID, Kind: mds.KindOffline, Version: v, Spec: &spec}
	art.Blobs = spec.Blobs()
	stage := mds.StageOfficial
	if tg.HasGates() {
		stage = mds.StageGray
	}
	t := &mds.Task{ID: f.id(), AppID: a.ID, Kind: mds.KindOffline, ArtifactID: art.ID, Policy: &mds.OfflinePolicy{},
		Status: status, Stage: stage, Targeting: tg}
	f.set.Artifacts = append(f.set.Artifacts, art)
	f.set.Tasks = append(f.set.Tasks, t)
	for i, base := range from {
		f.set.Deltas = append(f.set.Deltas, &mds.Delta{AppID: a.ID, Package: id, FromVersion: base, To: art.ID, ToVersion: v,
			Status: mds.DeltaReady, SHA256: fmt.Sprintf("%063x%d", art.ID, i), Size: 500})
	}
	return art
}

func offlineOf(t *testing.T, s *delivery.Snapshot, d *mds.Device) []delivery.OfflinePick {
	t.Helper()
	in := gray.NewInput(d, netip.Addr{}, now)
	var dec delivery.Decision
	if err := s.Evaluate(&in, nil, &dec); err != nil {
		t.Fatal(err)
	}
	return dec.Offline
}

// tell renders picks as the device is told them.
func tell(picks []delivery.OfflinePick) string {
	var out []string
	for _, pk := range picks {
		s := pk.Offer.Spec.Package + " " + pk.Offer.Artifact.Version
		if pk.Delta != nil {
			s += " from " + pk.Delta.From
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func TestOfflineChoice(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android, mds.IOS)
	nobody := mds.Targeting{Rules: []mds.Rule{{Field: "model", Operator: "IN", Values: []string{"none"}}}}
	testers := mds.Targeting{Rules: []mds.Rule{{Field: "model", Operator: "IN", Values: []string{"pixel"}}}}
	f.offline(shop, "home", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{})
	f.offline(shop, "home", "1.1.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{}, "1.0.0", "0.8.0")
	f.offline(shop, "home", "1.2.0", mds.OfflineNormal, mds.StatusLive, nobody, mds.OfflineSpec{}, "1.1.0")
	f.offline(shop, "home", "1.3.0", mds.OfflineNormal, mds.StatusLive, testers, mds.OfflineSpec{}, "1.1.0")
	f.offline(shop, "cart", "2.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{},
		mds.OfflineSpec{AppVersions: []version.Range{{Min: "3.0", Max: "3.9"}}})
	f.offline(shop, "common", "5.0.0", mds.OfflineGlobal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{})
	f.offline(shop, "checkout", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{Requires: []string{"common"}})
	f.offline(shop, "pay", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{Requires: []string{"fonts"}})
	s := f.compile(t)
	if len(s.Problems) != 0 {
		t.Fatal(s.Problems)
	}
	for _, c := range []struct {
		name  string
		model string
		app   string
		holds map[string]string
		want  string
	}{
		{name: "a fresh device gets every package that works with its app, each whole, globals with what needs them",
			want: "checkout 1.0.0, common 5.0.0, home 1.1.0"},
		{name: "a device holding a base gets the delta from it", holds: map[string]string{"home": "1.0.0", "common": "5.0.0", "checkout": "1.0.0"},
			want: "home 1.1.0 from 1.0.0"},
		{name: "a base without a delta gets the full package", holds: map[string]string{"home": "0.9.0", "common": "5.0.0", "checkout": "1.0.0"},
			want: "home 1.1.0"},
		{name: "a device holding the version is told nothing", holds: map[string]string{"home": "1.1.0", "common": "5.0.0", "checkout": "1.0.0"}},
		{name: "nor is one holding a newer version (no downgrade)", holds: map[string]string{"home": "1.2.0", "common": "5.0.1", "checkout": "1.0.0"}},
		{name: "the gray audience gets its version, with the delta to it", model: "pixel", holds: map[string]string{"home": "1.1.0", "common": "5.0.0", "checkout": "1.0.0"},
			want: "home 1.3.0 from 1.1.0"},
		{name: "an app in the range gets its packages", app: "3.1", holds: map[string]string{"home": "1.1.0", "common": "5.0.0", "checkout": "1.0.0"},
			want: "cart 2.0.0"},
		{name: "a package whose global is held elsewhere is still offered", holds: map[string]string{"home": "1.1.0", "common": "5.0.0"},
			want: "checkout 1.0.0"},
		{name: "a device holding what a package requires gets it even with no global offered", holds: map[string]string{"home": "1.1.0", "common": "9.0.0", "fonts": "1.0.0"},
			want: "checkout 1.0.0, pay 1.0.0"},
	} {
		d := device("shop", mds.Android, "2.0.0")
		if c.app != "" {
			d.AppVersion = c.app
		}
		d.Model, d.Offline = c.model, c.holds
		if got := tell(offlineOf(t, s, d)); got != c.want {
			t.Errorf("%s: told %q, want %q", c.name, got, c.want)
		}
	}

	// Without its global live, a package that requires it waits.
	var g fixture
	shop = g.app("shop", mds.Android)
	g.offline(shop, "common", "5.0.0", mds.OfflineGlobal, mds.StatusLive, nobody, mds.OfflineSpec{})
	g.offline(shop, "checkout", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{Requires: []string{"common"}})
	g.offline(shop, "home", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{})
	gs := g.compile(t)
	if got := tell(offlineOf(t, gs, device("shop", mds.Android, "2.0.0"))); got != "home 1.0.0" {
		t.Errorf("without its global: told %q, want home alone", got)
	}
	in := gray.NewInput(device("shop", mds.Android, "2.0.0"), netip.Addr{}, now)
	ex, err := gs.Explain(&in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ex, func(e delivery.Explanation) bool {
		return e.Kind == mds.KindOffline && !e.Chosen && slices.ContainsFunc(e.Steps, func(st gray.Step) bool {
			return strings.Contains(st.Detail, "requires global package common")
		})
	}) {
		t.Errorf("explain does not say the package waits for its global: %+v", ex)
	}
}

// TestOfflineExplain: explain says which version each package gives the
// device, and whether whole or as a delta, by the walk decide takes.
func TestOfflineExplain(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	f.offline(shop, "home", "1.0.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{})
	f.offline(shop, "home", "1.1.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{}, "1.0.0")
	s := f.compile(t)
	d := device("shop", mds.Android, "2.0.0")
	d.Offline = map[string]string{"home": "1.0.0"}
	in := gray.NewInput(d, netip.Addr{}, now)
	ex, err := s.Explain(&in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var chosen []string
	for _, e := range ex {
		if e.Kind != mds.KindOffline {
			continue
		}
		if e.Chosen {
			chosen = append(chosen, e.Version)
			if last := e.Steps[len(e.Steps)-1]; !strings.Contains(last.Detail, "delta from it (500 bytes") {
				t.Errorf("the chosen version's last step: %q", last.Detail)
			}
		}
	}
	if !slices.Equal(chosen, []string{"1.1.0"}) {
		t.Errorf("explain chose %v, want 1.1.0 alone", chosen)
	}
}

// TestOfflineServesDeltas: the blobs of a live version's ready deltas are
// served with it, and no longer once its task stops.
func TestOfflineServesDeltas(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	art := f.offline(shop, "home", "1.1.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{}, "1.0.0")
	delta := f.set.Deltas[0].SHA256
	pk := offlineOf(t, f.compile(t), &mds.Device{AppKey: "shop", Platform: mds.Android, AppVersion: "2.0", DeviceID: "d", Offline: map[string]string{"home": "1.0.0"}})
	if len(pk) != 1 || pk[0].Delta == nil || pk[0].Delta.SHA256 != delta || pk[0].Offer.DeltaIndex(pk[0].Delta) != 0 {
		t.Fatalf("told %+v", pk)
	}
	f.set.Revision = 1
	live := delivery.NewLive(&fakeLive{set: f.set})
	if err := live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !live.Serves(delta) || !live.Serves(art.Spec.(*mds.OfflineSpec).SHA256) {
		t.Error("a live version's package and delta are not served")
	}
	f.set.Tasks[0].Status = mds.StatusStopped
	f.set.Revision = 2
	live = delivery.NewLive(&fakeLive{set: f.set})
	if err := live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if live.Serves(delta) {
		t.Error("a stopped version's delta is still served")
	}
}

// TestOfflineDecideAllocates: deciding for a device that holds every
// current version allocates nothing, and nor does one offered packages
// once the Decision it decides into has grown.
func TestOfflineDecideAllocates(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	for i := range 20 {
		f.offline(shop, fmt.Sprintf("pkg%02d", i), "1.1.0", mds.OfflineNormal, mds.StatusLive, mds.Targeting{}, mds.OfflineSpec{}, "1.0.0")
	}
	s := f.compile(t)
	steady, behind := device("shop", mds.Android, "2.0.0"), device("shop", mds.Android, "2.0.0")
	steady.Offline, behind.Offline = map[string]string{}, map[string]string{}
	for i := range 20 {
		steady.Offline[fmt.Sprintf("pkg%02d", i)] = "1.1.0"
		behind.Offline[fmt.Sprintf("pkg%02d", i)] = "1.0.0"
	}
	var dec delivery.Decision
	for _, d := range []*mds.Device{steady, behind} {
		in := gray.NewInput(d, netip.Addr{}, now)
		s.Evaluate(&in, nil, &dec)
		if n := testing.AllocsPerRun(100, func() {
			in := gray.NewInput(d, netip.Addr{}, now)
			s.Evaluate(&in, nil, &dec)
		}); n != 0 {
			t.Errorf("deciding offline packages allocates %.1f times", n)
		}
	}
	if len(dec.Offline) != 20 {
		t.Errorf("the device behind is offered %d packages, want 20", len(dec.Offline))
	}
	dec.Reset()
	if len(dec.Offline) != 0 || cap(dec.Offline) < 20 || dec.Offline[:1][0].Offer != nil {
		t.Error("Reset keeps the array, empty and pointing at nothing")
	}
}

// countingAdmitter admits everyone, counting the admissions.
type countingAdmitter struct{ admitted int }

func (c *countingAdmitter) Admit(int64, *mds.Window, string, time.Time) bool {
	c.admitted++
	return true
}
func (c *countingAdmitter) Admitted(int64, *mds.Window, string, time.Time) (bool, int) {
	return false, 0
}

// TestOfflineExplainAdmitsNoOne: explaining a device to a version behind
// a capped window takes no place in the window; checking does.
func TestOfflineExplainAdmitsNoOne(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	window := mds.Targeting{Window: &mds.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Cap: 10}}
	f.offline(shop, "home", "1.0.0", mds.OfflineNormal, mds.StatusLive, window, mds.OfflineSpec{})
	s := f.compile(t)
	if len(s.Problems) != 0 {
		t.Fatal(s.Problems)
	}
	adm := &countingAdmitter{}
	in := gray.NewInput(device("shop", mds.Android, "2.0.0"), netip.Addr{}, now)
	if _, err := s.Explain(&in, adm); err != nil {
		t.Fatal(err)
	}
	if adm.admitted != 0 {
		t.Errorf("explain admitted the device %d times", adm.admitted)
	}
	var dec delivery.Decision
	if err := s.Evaluate(&in, adm, &dec); err != nil || len(dec.Offline) != 1 || adm.admitted != 1 {
		t.Errorf("a check: %+v, %v, admitted %d times; want the package, admitted once", dec.Offline, err, adm.admitted)
	}
}
