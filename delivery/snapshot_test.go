package delivery_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/gray"
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

// pkg describes an upgrade package of a fixture.
type pkg struct {
	platform mds.Platform
	version  string
	spec     mds.UpgradeSpec
}

func (f *fixture) offer(a *mds.App, p pkg, mode mds.UpgradeMode, status mds.Status) *mds.Task {
	spec := p.spec
	if spec.Source == "" {
		spec.Source, spec.SHA256 = mds.SourceBlob, strings.Repeat("ab", 32)
	}
	art := &mds.Artifact{ID: f.id(), AppID: a.ID, Kind: mds.KindUpgrade, Platform: p.platform, Version: p.version, Spec: &spec}
	art.Blobs = spec.Blobs()
	policy := &mds.UpgradePolicy{Mode: mode}
	if mode == mds.ModeSingle {
		policy.RemindInterval = mds.DefaultRemindInterval
	}
	t := &mds.Task{ID: f.id(), AppID: a.ID, Kind: mds.KindUpgrade, ArtifactID: art.ID, Policy: policy, Status: status, Stage: mds.StageOfficial}
	f.set.Artifacts = append(f.set.Artifacts, art)
	f.set.Tasks = append(f.set.Tasks, t)
	return t
}

func (f *fixture) compile(t testing.TB) *delivery.Snapshot {
	t.Helper()
	return delivery.Compile(&f.set, nil)
}

// evaluate checks d against s at now, with no capped windows in play, and
// returns the upgrade decided.
func evaluate(s *delivery.Snapshot, d *mds.Device, now time.Time) (delivery.UpgradeChoice, error) {
	in := gray.NewInput(d, netip.Addr{}, now)
	var dec delivery.Decision
	err := s.Evaluate(&in, nil, &dec)
	return dec.Upgrade, err
}

func device(key string, p mds.Platform, v string) *mds.Device {
	return &mds.Device{AppKey: key, Platform: p, AppVersion: v, DeviceID: "dev-1"}
}

func TestEvaluatePicksNewestMatching(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android, mds.IOS)
	v2 := f.offer(shop, pkg{platform: mds.Android, version: "2.0.0", spec: mds.UpgradeSpec{Build: 200}}, mds.ModeMultiple, mds.StatusLive)
	v3 := f.offer(shop, pkg{platform: mds.Android, version: "3.0.0", spec: mds.UpgradeSpec{Build: 300,
		AppVersions: []version.Range{{Min: "2.0.0"}}}}, mds.ModeForce, mds.StatusLive)
	f.offer(shop, pkg{platform: mds.Android, version: "1.10.0", spec: mds.UpgradeSpec{Build: 110}}, mds.ModeMultiple, mds.StatusLive)
	f.offer(shop, pkg{platform: mds.Android, version: "9.0.0"}, mds.ModeForce, mds.StatusPaused)
	ios := f.offer(shop, pkg{platform: mds.IOS, version: "5.0"}, mds.ModeMultiple, mds.StatusLive)
	beta := f.offer(shop, pkg{platform: mds.Android, version: "4.0.0", spec: mds.UpgradeSpec{Channel: "beta"}}, mds.ModeMultiple, mds.StatusLive)
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
				t.Errorf("offered task %d (%s), want nothing", d.Offer.Task.ID, d.Offer.Artifact.Version)
			case tt.want != nil && (d.Offer == nil || d.Offer.Task.ID != tt.want.ID):
				t.Errorf("offered %v, want task %d", d.Offer, tt.want.ID)
			}
		})
	}
}

func TestEvaluateSameVersionHigherBuild(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	rebuilt := f.offer(a, pkg{platform: mds.Android, version: "2.0", spec: mds.UpgradeSpec{Build: 201}}, mds.ModeMultiple, mds.StatusLive)
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
	single := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mds.ModeSingle, mds.StatusLive)
	s := f.compile(t)
	yearAhead := now.Add(365 * 24 * time.Hour)
	tests := []struct {
		name  string
		last  *mds.Reminder
		clock *time.Time // the device's clock, when it reports one
		want  bool
	}{
		{"never reminded", nil, nil, true},
		{"reminded an hour ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-time.Hour)}, nil, false},
		{"reminded just under 3 days ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-72*time.Hour + time.Second)}, nil, false},
		{"reminded 3 days ago", &mds.Reminder{TaskID: single.ID, At: now.Add(-72 * time.Hour)}, nil, true},
		{"reminded for another task", &mds.Reminder{TaskID: single.ID + 100, At: now.Add(-time.Minute)}, nil, true},
		{"device clock a little ahead", &mds.Reminder{TaskID: single.ID, At: now.Add(time.Minute)}, nil, false},
		{"device clock far ahead", &mds.Reminder{TaskID: single.ID, At: now.Add(24 * time.Hour)}, nil, true},
		// A device that reports its clock is throttled on it, however far
		// off it is.
		{"clock a year ahead, reminded an hour ago by it", &mds.Reminder{TaskID: single.ID, At: yearAhead.Add(-time.Hour)}, &yearAhead, false},
		{"clock a year ahead, reminded 3 days ago by it", &mds.Reminder{TaskID: single.ID, At: yearAhead.Add(-72 * time.Hour)}, &yearAhead, true},
		{"clock a year behind, reminded an hour ago by it", &mds.Reminder{TaskID: single.ID, At: now.Add(-365*24*time.Hour - time.Hour)}, ptr(now.Add(-365 * 24 * time.Hour)), false},
		{"clock set back since the reminder", &mds.Reminder{TaskID: single.ID, At: now.Add(time.Hour)}, &now, true},
	}
	for _, tt := range tests {
		dev := device("a", mds.Android, "1.0")
		dev.LastReminded, dev.DeviceTime = tt.last, tt.clock
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
		task := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mode, mds.StatusLive)
		dev := device("a", mds.Android, "1.0")
		dev.LastReminded = &mds.Reminder{TaskID: task.ID, At: now.Add(-time.Second)}
		d, _ := evaluate(f.compile(t), dev, now)
		if !d.Remind {
			t.Errorf("mode %s did not remind at every check", mode)
		}
	}
}

func TestEnterpriseOffers(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android, mds.IOS)
	ent := f.offer(a, pkg{platform: mds.IOS, version: "2.0", spec: mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: strings.Repeat("cd", 32),
		Enterprise: true, BundleID: "com.example.a"}}, mds.ModeForce, mds.StatusLive)
	s := f.compile(t)
	if o, ok := s.Enterprise("a", ent.ArtifactID); !ok || o.Task.ID != ent.ID {
		t.Error("live enterprise package has no manifest")
	}
	if _, ok := s.Enterprise("a", ent.ArtifactID+1000); ok {
		t.Error("manifest for an unknown package")
	}
	if _, ok := s.Enterprise("other-app", ent.ArtifactID); ok {
		t.Error("manifest found under another app's key")
	}
}

// TestPreviousKey: after a key rotation, devices still sending the old key
// are answered as the app's, until the old key is retired.
func TestPreviousKey(t *testing.T) {
	var f fixture
	a := f.app("new-key", mds.Android)
	a.PreviousKey = "old-key"
	task := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mds.ModeForce, mds.StatusLive)
	s := f.compile(t)
	for _, key := range []string{"new-key", "old-key"} {
		if d, err := evaluate(s, device(key, mds.Android, "1.0"), now); err != nil || d.Offer == nil || d.Offer.Task.ID != task.ID {
			t.Errorf("key %s: %+v, %v", key, d, err)
		}
	}
}

func TestCompileSkipsBrokenTasks(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	dangling := f.offer(a, pkg{platform: mds.Android, version: "3.0"}, mds.ModeForce, mds.StatusLive)
	dangling.ArtifactID = 999
	badRule := f.offer(a, pkg{platform: mds.Android, version: "2.5"}, mds.ModeForce, mds.StatusLive)
	badRule.Targeting.Rules = []mds.Rule{{Field: "city", Operator: mds.OpNumGt, Values: []string{"x"}}}
	good := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mds.ModeForce, mds.StatusLive)
	s := delivery.Compile(&f.set, nil)
	if len(s.Problems) != 2 || s.Offers() != 1 {
		t.Fatalf("problems %v, %d tasks; want the two broken ones left out", s.Problems, s.Offers())
	}
	if d, _ := evaluate(s, device("a", mds.Android, "1.0"), now); d.Offer == nil || d.Offer.Task.ID != good.ID {
		t.Errorf("the good task did not survive its broken neighbours: %+v", d.Offer)
	}
}

// reference compiles the core service's benchmark load: 100 apps × 20 tasks.
func reference(tb testing.TB) *delivery.Snapshot {
	tb.Helper()
	l := delivery.NewLive(deliverytest.Reference(100, 20))
	if err := l.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l.Current()
}

// TestEvaluateDoesNotAllocate holds the check path to its promise; the
// benchmarks report the same numbers but cannot fail.
func TestEvaluateDoesNotAllocate(t *testing.T) {
	s := reference(t)
	dev := &mds.Device{AppKey: deliverytest.RefKey(57), Platform: mds.Android, AppVersion: "3.1.0", Build: 310, DeviceID: "d", Channel: "xiaomi"}
	// The input is made inside the measured function, as each check makes
	// its own: it must stay on the stack.
	var dec delivery.Decision
	if allocs := testing.AllocsPerRun(100, func() {
		in := gray.NewInput(dev, netip.Addr{}, now)
		s.Evaluate(&in, nil, &dec)
	}); allocs != 0 {
		t.Errorf("Evaluate allocates %v times per check", allocs)
	}
	g := grayLoad(t, 10_000)
	for _, d := range []*mds.Device{deliverytest.GrayDevice(7, "2.0"), deliverytest.GrayDevice(20_000, "2.0")} {
		if allocs := testing.AllocsPerRun(100, func() {
			in := gray.NewInput(d, netip.Addr{}, now)
			g.Evaluate(&in, nil, &dec)
		}); allocs != 0 {
			t.Errorf("gray Evaluate for %s allocates %v times per check", d.UserID, allocs)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	s := reference(b)
	dev := &mds.Device{AppKey: deliverytest.RefKey(57), Platform: mds.Android, AppVersion: "3.1.0", Build: 310, DeviceID: "d",
		Channel: "xiaomi", LastReminded: &mds.Reminder{TaskID: 1, At: now}}
	if d, err := evaluate(s, dev, now); err != nil || d.Offer == nil {
		b.Fatalf("benchmark device gets nothing: %+v %v", d, err)
	}
	b.ReportAllocs()
	var dec delivery.Decision
	for b.Loop() {
		in := gray.NewInput(dev, netip.Addr{}, now)
		s.Evaluate(&in, nil, &dec)
	}
}

func BenchmarkCompile(b *testing.B) {
	load := deliverytest.Reference(100, 20)
	b.ReportAllocs()
	for b.Loop() {
		delivery.Compile(load.Set, nil)
	}
}
