package release_test

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/release"
	"github.com/mds-dev/mds/release/releasetest"
	"github.com/mds-dev/mds/version"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fixture builds a LiveSet by hand: apps, packages and live tasks.
type fixture struct {
	set    mds.LiveSet
	nextID int64
}

func (f *fixture) id() int64 { f.nextID++; return f.nextID }

func (f *fixture) app(key string, platforms ...mds.Platform) *mds.App {
	a := &mds.App{ID: f.id(), Slug: key, Key: key, Platforms: platforms}
	f.set.Apps = append(f.set.Apps, a)
	return a
}

func (f *fixture) offer(a *mds.App, p mds.Package, mode mds.UpgradeMode, status mds.Status) *mds.Task {
	p.ID, p.AppID = f.id(), a.ID
	if p.Source == "" {
		p.Source = mds.SourceBlob
		p.SHA256 = strings.Repeat("ab", 32)
	}
	t := &mds.Task{ID: f.id(), AppID: a.ID, PackageID: p.ID, Kind: mds.KindUpgrade, Mode: mode, Status: status, Stage: mds.StageOfficial}
	if mode == mds.ModeSingle {
		t.RemindInterval = mds.DefaultRemindInterval
	}
	f.set.Packages = append(f.set.Packages, &p)
	f.set.Tasks = append(f.set.Tasks, t)
	return t
}

func (f *fixture) compile(t testing.TB) *release.Snapshot {
	t.Helper()
	s, err := release.Compile(&f.set, release.Options{BaseURL: "https://mds.example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// evaluate checks d against s at now, with no capped windows in play.
func evaluate(s *release.Snapshot, d *mds.Device, now time.Time) (release.Decision, error) {
	in := gray.NewInput(d, netip.Addr{}, now)
	return s.Evaluate(&in, nil)
}

func device(key string, p mds.Platform, v string) *mds.Device {
	return &mds.Device{AppKey: key, Platform: p, AppVersion: v, DeviceID: "dev-1"}
}

func TestEvaluatePicksNewestMatching(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android, mds.IOS)
	v2 := f.offer(shop, mds.Package{Platform: mds.Android, Version: "2.0.0", Build: 200}, mds.ModeMultiple, mds.StatusLive)
	v3 := f.offer(shop, mds.Package{Platform: mds.Android, Version: "3.0.0", Build: 300,
		AppVersions: []version.Range{{Min: "2.0.0"}}}, mds.ModeForce, mds.StatusLive)
	f.offer(shop, mds.Package{Platform: mds.Android, Version: "1.10.0", Build: 110}, mds.ModeMultiple, mds.StatusLive)
	f.offer(shop, mds.Package{Platform: mds.Android, Version: "9.0.0"}, mds.ModeForce, mds.StatusPaused)
	ios := f.offer(shop, mds.Package{Platform: mds.IOS, Version: "5.0"}, mds.ModeMultiple, mds.StatusLive)
	beta := f.offer(shop, mds.Package{Platform: mds.Android, Version: "4.0.0", Channel: "beta"}, mds.ModeMultiple, mds.StatusLive)
	s := f.compile(t)

	tests := []struct {
		name string
		dev  *mds.Device
		want *mds.Task
	}{
		{"3.0 needs 2.0 or later, so 1.0 gets 2.0", device("shop", mds.Android, "1.0.0"), v2},
		{"2.0 gets 3.0", device("shop", mds.Android, "2.0.0"), v3},
		{"1.9 gets 2.0, not 1.10", device("shop", mds.Android, "1.9.0"), v2},
		{"3.0 is current", device("shop", mds.Android, "3.0.0"), nil},
		{"newer than anything", device("shop", mds.Android, "10.0"), nil},
		{"ios has its own", device("shop", mds.IOS, "1.0"), ios},
		{"paused is invisible", device("shop", mds.Android, "5.0"), nil},
		{"channel beta sees beta", &mds.Device{AppKey: "shop", Platform: mds.Android, AppVersion: "2.5", Channel: "beta"}, beta},
		{"1.9.9 gets 2.0 not 1.10.0", device("shop", mds.Android, "1.9.9"), v2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := evaluate(s, tt.dev, now)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && d.Offer != nil:
				t.Errorf("offered task %d (%s), want nothing", d.Offer.Task.ID, d.Offer.Package.Version)
			case tt.want != nil && (d.Offer == nil || d.Offer.Task.ID != tt.want.ID):
				t.Errorf("offered %v, want task %d", d.Offer, tt.want.ID)
			}
		})
	}
}

func TestEvaluateSameVersionHigherBuild(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	rebuilt := f.offer(a, mds.Package{Platform: mds.Android, Version: "2.0", Build: 201}, mds.ModeMultiple, mds.StatusLive)
	s := f.compile(t)
	d, _ := evaluate(s, &mds.Device{AppKey: "a", Platform: mds.Android, AppVersion: "2.0", Build: 200}, now)
	if d.Offer == nil || d.Offer.Task.ID != rebuilt.ID {
		t.Errorf("build 200 of 2.0 was not offered build 201: %+v", d)
	}
	d, _ = evaluate(s, &mds.Device{AppKey: "a", Platform: mds.Android, AppVersion: "2.0", Build: 201}, now)
	if d.Offer != nil {
		t.Errorf("build 201 offered itself")
	}
	d, _ = evaluate(s, &mds.Device{AppKey: "a", Platform: mds.Android, AppVersion: "2.0"}, now)
	if d.Offer != nil {
		t.Errorf("a device that sends no build was offered its own version")
	}
}

func TestEvaluateErrors(t *testing.T) {
	var f fixture
	f.app("android-only", mds.Android)
	s := f.compile(t)
	if _, err := evaluate(s, device("nope", mds.Android, "1.0"), now); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("unknown key: %v, want ENOTFOUND", err)
	}
	if _, err := evaluate(s, device("android-only", mds.IOS, "1.0"), now); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("platform the app lacks: %v, want EINVALID", err)
	}
}

func TestRemind(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	single := f.offer(a, mds.Package{Platform: mds.Android, Version: "2.0"}, mds.ModeSingle, mds.StatusLive)
	s := f.compile(t)
	tests := []struct {
		name string
		last *mds.Reminder
		want bool
	}{
		{"never reminded", nil, true},
		{"reminded an hour ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-time.Hour)}, false},
		{"reminded just under 3 days ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-72*time.Hour + time.Second)}, false},
		{"reminded 3 days ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-72 * time.Hour)}, true},
		{"reminded for another task", &mds.Reminder{TaskID: single.ID + 100, At: now.Add(-time.Minute)}, true},
		{"device clock a little ahead", &mds.Reminder{TaskID: single.ID, At: now.Add(time.Minute)}, false},
		{"device clock far ahead", &mds.Reminder{TaskID: single.ID, At: now.Add(24 * time.Hour)}, true},
	}
	for _, tt := range tests {
		dev := device("a", mds.Android, "1.0")
		dev.LastReminded = tt.last
		d, err := evaluate(s, dev, now)
		if err != nil || d.Offer == nil {
			t.Fatalf("%s: %+v, %v", tt.name, d, err)
		}
		if d.Remind != tt.want {
			t.Errorf("%s: remind = %v, want %v", tt.name, d.Remind, tt.want)
		}
	}
	for _, mode := range []mds.UpgradeMode{mds.ModeMultiple, mds.ModeForce} {
		var f fixture
		a := f.app("a", mds.Android)
		task := f.offer(a, mds.Package{Platform: mds.Android, Version: "2.0"}, mode, mds.StatusLive)
		dev := device("a", mds.Android, "1.0")
		dev.LastReminded = &mds.Reminder{TaskID: task.ID, At: now.Add(-time.Second)}
		d, _ := evaluate(f.compile(t), dev, now)
		if !d.Remind {
			t.Errorf("mode %s did not remind at every check", mode)
		}
	}
}

func TestLinks(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android, mds.IOS)
	f.offer(a, mds.Package{Platform: mds.Android, Version: "2.0", Source: mds.SourceStore, URL: "market://details?id=x"}, mds.ModeForce, mds.StatusLive)
	ent := f.offer(a, mds.Package{Platform: mds.IOS, Version: "2.0", Source: mds.SourceBlob, SHA256: strings.Repeat("cd", 32),
		Enterprise: true, BundleID: "com.example.a"}, mds.ModeForce, mds.StatusLive)
	s := f.compile(t)

	d, _ := evaluate(s, device("a", mds.Android, "1.0"), now)
	if d.Offer.Link != "market://details?id=x" || d.Offer.PackageURL != "" {
		t.Errorf("store offer link %q package %q", d.Offer.Link, d.Offer.PackageURL)
	}
	d, _ = evaluate(s, device("a", mds.IOS, "1.0"), now)
	u, err := url.Parse(d.Offer.Link)
	if err != nil || u.Scheme != "itms-services" || u.Query().Get("action") != "download-manifest" {
		t.Fatalf("enterprise link %q", d.Offer.Link)
	}
	want := fmt.Sprintf("https://mds.example.com/client/v1/manifests/a/%d.plist", ent.PackageID)
	if got := u.Query().Get("url"); got != want {
		t.Errorf("manifest url %q, want %q", got, want)
	}
	if d.Offer.PackageURL != "https://mds.example.com/client/v1/blobs/"+strings.Repeat("cd", 32) {
		t.Errorf("package url %q", d.Offer.PackageURL)
	}
	if o, ok := s.Enterprise("a", ent.PackageID); !ok || o.Task.ID != ent.ID {
		t.Error("live enterprise package has no manifest")
	}
	if _, ok := s.Enterprise("a", ent.PackageID+1000); ok {
		t.Error("manifest for an unknown package")
	}
	if _, ok := s.Enterprise("other-app", ent.PackageID); ok {
		t.Error("manifest found under another app's key")
	}
}

func TestCompileSkipsBrokenTasks(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	dangling := f.offer(a, mds.Package{Platform: mds.Android, Version: "3.0"}, mds.ModeForce, mds.StatusLive)
	dangling.PackageID = 999
	badRule := f.offer(a, mds.Package{Platform: mds.Android, Version: "2.5"}, mds.ModeForce, mds.StatusLive)
	badRule.Targeting.Rules = []mds.Rule{{Field: "city", Operator: mds.OpNumGt, Values: []string{"x"}}}
	good := f.offer(a, mds.Package{Platform: mds.Android, Version: "2.0"}, mds.ModeForce, mds.StatusLive)
	s, err := release.Compile(&f.set, release.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 2 || s.Tasks() != 1 {
		t.Fatalf("problems %v, %d tasks; want the two broken ones left out", s.Problems, s.Tasks())
	}
	if d, _ := evaluate(s, device("a", mds.Android, "1.0"), now); d.Offer == nil || d.Offer.Task.ID != good.ID {
		t.Errorf("the good task did not survive its broken neighbours: %+v", d.Offer)
	}
}

// reference compiles the core service's benchmark load: 100 apps × 20 tasks.
func reference(tb testing.TB) *release.Snapshot {
	tb.Helper()
	l := release.NewLive(releasetest.Reference(100, 20), release.Options{BaseURL: "https://x"})
	if err := l.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l.Current()
}

// TestEvaluateDoesNotAllocate holds the check path to its promise; the
// benchmarks report the same numbers but cannot fail.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	s := reference(t)
	dev := &mds.Device{AppKey: releasetest.RefKey(57), Platform: mds.Android, AppVersion: "3.1.0", Build: 310, DeviceID: "d", Channel: "xiaomi"}
	// The input is made inside the measured function, as each check makes
	// its own: it must stay on the stack.
	if allocs := testing.AllocsPerRun(100, func() {
		in := gray.NewInput(dev, netip.Addr{}, now)
		s.Evaluate(&in, nil)
	}); allocs != 0 {
		t.Errorf("Evaluate allocates %v times per check", allocs)
	}
	g := grayLoad(t, 10_000)
	for _, d := range []*mds.Device{releasetest.GrayDevice(7, "2.0"), releasetest.GrayDevice(20_000, "2.0")} {
		if allocs := testing.AllocsPerRun(100, func() {
			in := gray.NewInput(d, netip.Addr{}, now)
			g.Evaluate(&in, nil)
		}); allocs != 0 {
			t.Errorf("gray Evaluate for %s allocates %v times per check", d.UserID, allocs)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	s := reference(b)
	dev := &mds.Device{AppKey: releasetest.RefKey(57), Platform: mds.Android, AppVersion: "3.1.0", Build: 310, DeviceID: "d",
		Channel: "xiaomi", LastReminded: &mds.Reminder{TaskID: 1, At: now}}
	if d, err := evaluate(s, dev, now); err != nil || d.Offer == nil {
		b.Fatalf("benchmark device gets nothing: %+v %v", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		in := gray.NewInput(dev, netip.Addr{}, now)
		s.Evaluate(&in, nil)
	}
}

func BenchmarkCompile(b *testing.B) {
	load := releasetest.Reference(100, 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := release.Compile(load.Set, release.Options{BaseURL: "https://x"}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
