package gray_test

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func phone() *mds.Device {
	return &mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: "2.10.1", Build: 2101, DeviceID: "dev-42",
		UserID: "alice", Model: "SM-S918B", Brand: "Samsung", OSVersion: "14", Network: "wifi", Region: "CN-31",
		City: "Shanghai", Channel: "huawei", Language: "zh-CN",
		Attributes: map[string]string{"tier": "gold", "age": "37", "installed": "2026-01-15T08:00:00Z", "lan": "192.168.1.20",
			"sv": "1.2.3-rc.10"}}
}

func TestOperators(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.9")
	tests := []struct {
		rule mds.Rule
		want bool
	}{
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{"Beijing", "Shanghai"}}, true},
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{"beijing", "shanghai"}}, false},
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{"beijing", "shanghai"}, CaseInsensitive: true}, true},
		{mds.Rule{Field: "city", Operator: mds.OpNotIn, Values: []string{"Beijing"}}, true},
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: manyCities("Shanghai")}, true},
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: manyCities("SHANGHAI"), CaseInsensitive: true}, true},
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: manyCities("Nanjing")}, false},
		{mds.Rule{Field: "channel", Operator: mds.OpIn, Values: nil}, false},
		{mds.Rule{Field: "channel", Operator: mds.OpNotIn, Values: nil}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"SM-", "GT-"}}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"sm-"}}, false},
		{mds.Rule{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"sm-"}, CaseInsensitive: true}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrEndsWith, Values: []string{"918b"}, CaseInsensitive: true}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrContains, Values: []string{"S918"}}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrContains, Values: []string{"s918"}, CaseInsensitive: true}, true},
		{mds.Rule{Field: "model", Operator: mds.OpStrContains, Values: []string{"Pixel"}}, false},
		{mds.Rule{Field: "model", Operator: mds.OpRegex, Values: []string{`^SM-S9\d\d`}}, true},
		{mds.Rule{Field: "model", Operator: mds.OpRegex, Values: []string{`^sm-s9`}, CaseInsensitive: true}, true},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumGte, Values: []string{"18"}}, true},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumLt, Values: []string{"37"}}, false},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumEq, Values: []string{"37.0"}}, true},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumRange, Values: []string{"30", "40"}}, true},
		{mds.Rule{Field: "attr.tier", Operator: mds.OpNumGt, Values: []string{"1"}}, false}, // not a number
		{mds.Rule{Field: "build", Operator: mds.OpNumGte, Values: []string{"2100"}}, true},
		{mds.Rule{Field: "app_version", Operator: mds.OpVersionGt, Values: []string{"2.9.2"}}, true}, // 2.10.1 > 2.9.2
		{mds.Rule{Field: "app_version", Operator: mds.OpVersionLt, Values: []string{"2.10.1"}}, false},
		{mds.Rule{Field: "app_version", Operator: mds.OpVersionEq, Values: []string{"2.10.1"}}, true},
		{mds.Rule{Field: "app_version", Operator: mds.OpVersionRange, Values: []string{"2.0", "2.10.1"}}, true},
		{mds.Rule{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"9.1"}}, true}, // 14 > 9.1
		{mds.Rule{Field: "os_version", Operator: mds.OpVersionLte, Values: []string{"13.9"}}, false},
		{mds.Rule{Field: "attr.tier", Operator: mds.OpVersionGt, Values: []string{"1"}}, false},      // not a version
		{mds.Rule{Field: "attr.semver", Operator: mds.OpSemverGt, Values: []string{"1.0.0"}}, false}, // missing
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverGt, Values: []string{"1.2.3-rc.9"}}, true}, // 10 > 9 numerically
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverGte, Values: []string{"1.2.3-rc.10"}}, true},
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverGte, Values: []string{"1.2.3-rc.9"}}, true},
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverGte, Values: []string{"1.2.3"}}, false},
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverLte, Values: []string{"1.2.3-rc.10+build.2"}}, true},
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverLte, Values: []string{"1.2.3-rc.9"}}, false},
		{mds.Rule{Field: "attr.sv", Operator: mds.OpSemverLt, Values: []string{"1.2.3"}}, true},
		{mds.Rule{Field: "now", Operator: mds.OpDateAfter, Values: []string{"2026-11-01T00:00:00Z"}}, true},
		{mds.Rule{Field: "now", Operator: mds.OpDateBefore, Values: []string{"2026-11-01T00:00:00Z"}}, false},
		{mds.Rule{Field: "attr.installed", Operator: mds.OpDateBefore, Values: []string{"2026-02-01T00:00:00+08:00"}}, true},
		{mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{"10.0.0.0/8", "203.0.113.0/24"}}, true},
		{mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{"203.0.113.9"}}, true},
		{mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{"2001:db8::/32"}}, false},
		{mds.Rule{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"203.0.113.0/24"}}, true},
		{mds.Rule{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"::ffff:203.0.113.0/120"}}, true}, // a mapped block is IPv4
		{mds.Rule{Field: "city", Operator: mds.OpIn, Values: []string{" Shanghai "}}, true},               // trimmed
		{mds.Rule{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"  SM-"}}, true},
		{mds.Rule{Field: "attr.lan", Operator: mds.OpCIDR, Values: []string{"192.168.0.0/16"}}, true},
		{mds.Rule{Field: "network", Operator: mds.OpIn, Values: []string{"wifi", "5g"}}, true},
		{mds.Rule{Field: "language", Operator: mds.OpStrStartsWith, Values: []string{"zh"}}, true},
		{mds.Rule{Field: "platform", Operator: mds.OpIn, Values: []string{"android"}}, true},
		{mds.Rule{Field: "user_id", Operator: mds.OpIn, Values: []string{"alice"}}, true},
		{mds.Rule{Field: "brand", Operator: mds.OpIn, Values: []string{"Samsung"}, Inverted: true}, false},
		{mds.Rule{Field: "attr.missing", Operator: mds.OpStrContains, Values: []string{"x"}}, false},
		{mds.Rule{Field: "attr.missing", Operator: mds.OpStrContains, Values: []string{"x"}, Inverted: true}, true},
		{mds.Rule{Field: "attr.missing", Operator: mds.OpNotIn, Values: []string{"x"}}, true},
	}
	for _, tt := range tests {
		r, err := gray.CompileRule(tt.rule)
		if err != nil {
			t.Errorf("%+v: %v", tt.rule, err)
			continue
		}
		in := gray.NewInput(phone(), ip, now)
		if got := r.Match(&in); got != tt.want {
			t.Errorf("%s: got %v, want %v", r, got, tt.want)
		}
	}
}

func manyCities(extra string) []string {
	vals := []string{extra}
	for i := range 50 {
		vals = append(vals, fmt.Sprintf("city-%d", i))
	}
	return vals
}

func TestCompileRuleErrors(t *testing.T) {
	tests := []struct {
		rule mds.Rule
		want string
	}{
		{mds.Rule{Field: "shoe_size", Operator: mds.OpIn, Values: []string{"42"}}, "not one of"},
		{mds.Rule{Field: "attr.", Operator: mds.OpIn, Values: []string{"x"}}, "attribute name"},
		{mds.Rule{Field: "city", Operator: "LIKE", Values: []string{"x"}}, "not known"},
		{mds.Rule{Field: "city", Operator: mds.OpStrContains}, "at least one"},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"1", "2"}}, "exactly 1"},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"old"}}, "not a number"},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumRange, Values: []string{"9", "1"}}, "empty"},
		{mds.Rule{Field: "os_version", Operator: mds.OpVersionGt, Values: []string{"ten"}}, "start with a digit"},
		{mds.Rule{Field: "os_version", Operator: mds.OpVersionRange, Values: []string{"12", "9"}}, "empty"},
		{mds.Rule{Field: "app_version", Operator: mds.OpSemverGt, Values: []string{"1.2"}}, "semantic version"},
		{mds.Rule{Field: "now", Operator: mds.OpDateAfter, Values: []string{"tomorrow"}}, "RFC 3339"},
		{mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{"10.0.0.0/33"}}, "CIDR"},
		{mds.Rule{Field: "model", Operator: mds.OpRegex, Values: []string{"(unclosed"}}, "regular expression"},
		{mds.Rule{Field: "model", Operator: mds.OpStrContains, Values: []string{""}}, "value 1 is empty"},
		{mds.Rule{Field: "model", Operator: mds.OpIn, Values: []string{"a", " "}}, "value 2 is empty"},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"inf"}}, "not a number"},
		{mds.Rule{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"0x1p4"}}, "not a number"},
		{mds.Rule{Field: "attr.v", Operator: mds.OpSemverGte, Values: []string{"1.2.3+a..b"}}, "build metadata"},
		{mds.Rule{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"1..4"}}, "empty part"},
	}
	for _, tt := range tests {
		_, err := gray.CompileRule(tt.rule)
		if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(mds.ErrorMessage(err), tt.want) {
			t.Errorf("%+v: error %v, want EINVALID mentioning %q", tt.rule, err, tt.want)
		}
	}
}

func TestBucketIsStableAndUniform(t *testing.T) {
	if a, b := gray.Bucket("salt", "dev-1"), gray.Bucket("salt", "dev-1"); a != b {
		t.Fatal("bucket is not stable")
	}
	// Pinned values: buckets are a contract across versions and nodes.
	if b := gray.Bucket("s1", "device-0001"); b != 612 {
		t.Errorf("Bucket(s1, device-0001) = %d; the hash changed, which would reshuffle every rollout", b)
	}
	const n = 200_000
	counts := make([]int, 100)
	differ := 0
	for i := range n {
		id := fmt.Sprintf("device-%07d", i)
		b := gray.Bucket("task-salt", id)
		if b < 0 || b >= 10000 {
			t.Fatalf("bucket %d out of range", b)
		}
		counts[b/100]++
		if gray.Bucket("other-salt", id)/100 != b/100 {
			differ++
		}
	}
	// Each percent should hold about 2,000 devices; allow 5 standard deviations.
	for pct, c := range counts {
		if math.Abs(float64(c)-n/100) > 5*math.Sqrt(n/100) {
			t.Errorf("percent %d holds %d devices, want about %d", pct, c, n/100)
		}
	}
	if differ < n*9/10 {
		t.Errorf("another salt moved only %d of %d devices; tasks would share their gray audience", differ, n)
	}
}

type fakeAdmitter struct {
	mu       sync.Mutex
	admitted map[string]bool
	calls    int
}

func (f *fakeAdmitter) Admit(task int64, w *mds.Window, key string, _ time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.admitted == nil {
		f.admitted = map[string]bool{}
	}
	if f.admitted[key] {
		return true
	}
	if len(f.admitted) >= w.Cap {
		return false
	}
	f.admitted[key] = true
	return true
}

func (f *fakeAdmitter) Admitted(task int64, w *mds.Window, key string, _ time.Time) (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.admitted[key], len(f.admitted)
}

func compile(t testing.TB, task *mds.Task, sets map[int64]*mds.RuleSet, lists map[int64]*gray.List) *gray.Audience {
	t.Helper()
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	tg, err := gray.NewCatalog(sets, lists).Compile(task)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func grayTask(tg mds.Targeting) *mds.Task {
	return &mds.Task{ID: 7, AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Targeting: tg}
}

func TestRolloutOnlyAdds(t *testing.T) {
	in := func(id string) gray.Input {
		d := phone()
		d.DeviceID = id
		return gray.NewInput(d, netip.Addr{}, now)
	}
	var prev map[string]bool
	for _, pct := range []float64{0.01, 1, 5, 12.5, 50, 99.99, 100} {
		tg := compile(t, grayTask(mds.Targeting{Rollout: &mds.Rollout{Percent: pct}, Salt: "fixed"}), nil, nil)
		cur := map[string]bool{}
		for i := range 20_000 {
			id := fmt.Sprintf("d%05d", i)
			x := in(id)
			if tg.Decide(&x, nil) {
				cur[id] = true
			}
		}
		for id := range prev {
			if !cur[id] {
				t.Fatalf("raising to %v%% dropped device %s", pct, id)
			}
		}
		if want := 20_000 * pct / 100; math.Abs(float64(len(cur))-want) > 4*math.Sqrt(want)+1 {
			t.Errorf("%v%% admitted %d of 20000", pct, len(cur))
		}
		prev = cur
	}
	if len(prev) != 20_000 {
		t.Errorf("100%% admitted %d of 20000", len(prev))
	}
}

func TestRolloutStickiness(t *testing.T) {
	tg := compile(t, grayTask(mds.Targeting{Rollout: &mds.Rollout{Percent: 50, Stickiness: mds.StickyUser}, Salt: "s"}), nil, nil)
	// One user on many devices: the same answer on all of them.
	var answers []bool
	for i := range 20 {
		d := phone()
		d.DeviceID = fmt.Sprintf("device-%d", i)
		in := gray.NewInput(d, netip.Addr{}, now)
		answers = append(answers, tg.Decide(&in, nil))
	}
	for _, a := range answers {
		if a != answers[0] {
			t.Fatal("user stickiness gave one user different answers on different devices")
		}
	}
	d := phone()
	d.UserID = ""
	in := gray.NewInput(d, netip.Addr{}, now)
	if tg.Decide(&in, nil) {
		t.Error("a device without a user id passed a user-sticky rollout")
	}
}

func TestRamp(t *testing.T) {
	r := &mds.Rollout{Ramp: []mds.RampStep{{At: now, Percent: 1}, {At: now.Add(24 * time.Hour), Percent: 10}, {At: now.Add(48 * time.Hour), Percent: 100}}}
	for _, tt := range []struct {
		at   time.Time
		want int
	}{{now.Add(-time.Second), 0}, {now, 100}, {now.Add(23 * time.Hour), 100}, {now.Add(24 * time.Hour), 1000}, {now.Add(72 * time.Hour), 10000}} {
		if got := r.BasisPointsAt(tt.at); got != tt.want {
			t.Errorf("at %v: %d bp, want %d", tt.at.Sub(now), got, tt.want)
		}
	}
	tg := compile(t, grayTask(mds.Targeting{Rollout: r}), nil, nil)
	d := phone()
	before := gray.NewInput(d, netip.Addr{}, now.Add(-time.Minute))
	after := gray.NewInput(d, netip.Addr{}, now.Add(49*time.Hour))
	if tg.Decide(&before, nil) || !tg.Decide(&after, nil) {
		t.Error("the ramp did not move the device from out (before the first step) to in (at 100%)")
	}
}

func TestWhitelistAndRules(t *testing.T) {
	b := gray.NewListBuilder(&mds.Whitelist{ID: 3, AppID: 1, Name: "testers", Kind: mds.WhitelistUsers}, 0)
	for _, e := range []string{"alice", "bob", "re:^qa-\\d+$"} {
		if err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	lists := map[int64]*gray.List{3: b.Build()}
	sets := map[int64]*mds.RuleSet{9: {ID: 9, AppID: 1, Name: "android 12+", Rules: []mds.Rule{{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}}}}}
	tg := compile(t, grayTask(mds.Targeting{Whitelists: []int64{3}, RuleSets: []int64{9},
		Rules: []mds.Rule{{Field: "brand", Operator: mds.OpIn, Values: []string{"Samsung"}}}}), sets, lists)
	decide := func(user, os string) bool {
		d := phone()
		d.UserID, d.OSVersion = user, os
		in := gray.NewInput(d, netip.Addr{}, now)
		return tg.Decide(&in, nil)
	}
	for _, tt := range []struct {
		user, os string
		want     bool
	}{{"alice", "14", true}, {"qa-17", "13", true}, {"carol", "14", false}, {"alice", "11", false}, {"qa-x", "14", false}} {
		if got := decide(tt.user, tt.os); got != tt.want {
			t.Errorf("user %s on android %s: %v, want %v", tt.user, tt.os, got, tt.want)
		}
	}
	if _, err := gray.NewCatalog(nil, lists).Compile(grayTask(mds.Targeting{Whitelists: []int64{4}})); err == nil {
		t.Error("a task naming a missing whitelist compiled")
	}
	if _, err := gray.NewCatalog(sets, lists).Compile(grayTask(mds.Targeting{RuleSets: []int64{8}, Whitelists: []int64{3}})); err == nil {
		t.Error("a task naming a missing rule set compiled")
	}
}

func TestListMembership(t *testing.T) {
	const n = 100_000
	b := gray.NewListBuilder(&mds.Whitelist{ID: 1, Kind: mds.WhitelistDevices}, 10)
	for i := range n {
		b.Add(fmt.Sprintf("device-%d", i))
		b.Add(fmt.Sprintf("device-%d", i)) // duplicates count once
	}
	l := b.Build()
	if l.Len() != n {
		t.Fatalf("Len = %d, want %d", l.Len(), n)
	}
	for i := range n {
		id := fmt.Sprintf("device-%d", i)
		if !l.Contains(id, gray.Hash(id)) {
			t.Fatalf("%s missing", id)
		}
	}
	for i := n; i < 2*n; i++ {
		id := fmt.Sprintf("device-%d", i)
		if l.Contains(id, gray.Hash(id)) {
			t.Fatalf("%s present", id)
		}
	}
	if l.Contains("", gray.Hash("")) {
		t.Error("the empty id is listed")
	}
	if err := b.Add("re:(bad"); err == nil {
		t.Error("a bad pattern was accepted")
	}
}

// TestWindowCap runs many goroutines through one capped window: exactly
// cap distinct devices get in, a device that got in stays in after the
// window closes, and no one gets in before it opens.
func TestWindowCap(t *testing.T) {
	w := &mds.Window{Start: now, End: now.Add(time.Hour), Cap: 25}
	tg := compile(t, grayTask(mds.Targeting{Window: w}), nil, nil)
	adm := &fakeAdmitter{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := map[string]bool{}
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				d := phone()
				d.DeviceID = fmt.Sprintf("d%d-%d", g, i%10) // each device checks five times
				in := gray.NewInput(d, netip.Addr{}, now.Add(time.Minute))
				if tg.Decide(&in, adm) {
					mu.Lock()
					admitted[d.DeviceID] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(admitted) != w.Cap {
		t.Fatalf("%d devices admitted, want exactly %d", len(admitted), w.Cap)
	}
	for id := range admitted {
		d := phone()
		d.DeviceID = id
		in := gray.NewInput(d, netip.Addr{}, now.Add(48*time.Hour))
		if !tg.Decide(&in, adm) {
			t.Errorf("admitted device %s lost the task after the window closed", id)
		}
	}
	d := phone()
	d.DeviceID = "late"
	late := gray.NewInput(d, netip.Addr{}, now.Add(48*time.Hour))
	early := gray.NewInput(d, netip.Addr{}, now.Add(-time.Minute))
	calls := adm.calls
	if tg.Decide(&late, adm) || tg.Decide(&early, adm) || adm.calls != calls {
		t.Error("a device was admitted, or an admission attempted, outside the window")
	}
}

func TestExplain(t *testing.T) {
	b := gray.NewListBuilder(&mds.Whitelist{ID: 3, AppID: 1, Name: "testers", Kind: mds.WhitelistDevices}, 1)
	b.Add("vip")
	lists := map[int64]*gray.List{3: b.Build()}
	tg := compile(t, grayTask(mds.Targeting{Whitelists: []int64{3}, Rollout: &mds.Rollout{Percent: 0.01},
		Window: &mds.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Cap: 2},
		Rules:  []mds.Rule{{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}}}}), nil, lists)
	adm := &fakeAdmitter{admitted: map[string]bool{"a": true, "b": true}}
	explain := func(id, os string) (bool, []gray.Step) {
		d := phone()
		d.DeviceID, d.OSVersion = id, os
		in := gray.NewInput(d, netip.Addr{}, now)
		return tg.Explain(&in, adm)
	}
	ok, steps := explain("vip", "11")
	last := steps[len(steps)-1]
	if ok || last.What != "rule" || !strings.Contains(last.Detail, `os_version VERSION_GTE 12; device has "11"`) {
		t.Errorf("failing rule: %v %+v", ok, steps)
	}
	ok, steps = explain("vip", "14")
	if last = steps[len(steps)-1]; !ok || last.What != "whitelist" || !strings.Contains(last.Detail, `"vip" is in whitelist "testers"`) {
		t.Errorf("whitelisted: %v %+v", ok, steps)
	}
	ok, steps = explain("a", "14")
	if last = steps[len(steps)-1]; !ok || last.What != "window" || !strings.Contains(last.Detail, "admitted to the window (2 of 2") {
		t.Errorf("admitted: %v %+v", ok, steps)
	}
	ok, steps = explain("nobody", "14")
	last = steps[len(steps)-1]
	if ok || last.What != "gray" || !strings.Contains(last.Detail, "not in whitelist") || !strings.Contains(last.Detail, "bucket") ||
		!strings.Contains(last.Detail, "window is full: 2 of 2") {
		t.Errorf("rejected: %v %+v", ok, steps)
	}
	if len(adm.admitted) != 2 {
		t.Error("Explain admitted a device")
	}
	promoted := grayTask(mds.Targeting{Rollout: &mds.Rollout{Percent: 1}})
	if err := promoted.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := promoted.Apply(mds.ActionPromote); err != nil {
		t.Fatal(err)
	}
	ok, steps = compile(t, promoted, nil, nil).Explain(ptr(gray.NewInput(phone(), netip.Addr{}, now)), adm)
	if !ok || steps[len(steps)-1].What != "stage" {
		t.Errorf("official: %v %+v", ok, steps)
	}
}

func ptr[T any](v T) *T { return &v }

// TestWindowMovedLater: a device admitted to a window keeps the task when
// the window is later moved to start in the future.
func TestWindowMovedLater(t *testing.T) {
	adm := &fakeAdmitter{admitted: map[string]bool{"dev-42": true}}
	task := grayTask(mds.Targeting{Window: &mds.Window{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour), Cap: 10}})
	tg := compile(t, task, nil, nil)
	in := gray.NewInput(phone(), netip.Addr{}, now)
	if !tg.Decide(&in, adm) {
		t.Error("an admitted device lost the task when the window moved later")
	}
	ok, steps := tg.Explain(ptr(gray.NewInput(phone(), netip.Addr{}, now)), adm)
	if !ok || steps[len(steps)-1].What != "window" {
		t.Errorf("Explain disagrees with Decide: %v %+v", ok, steps)
	}
}

// TestSharedRuleMemo compares tasks compiled in one catalog (rules shared
// and their results remembered per check, past the memo's size) with each
// rule evaluated afresh, over many random rules and devices.
func TestSharedRuleMemo(t *testing.T) {
	fields := []string{"city", "model", "os_version", "channel", "attr.tier"}
	values := []string{"a", "b", "c", "10", "12", "wifi"}
	ops := []mds.Operator{mds.OpIn, mds.OpNotIn, mds.OpStrContains, mds.OpVersionGte}
	var pool []mds.Rule
	for i := range 100 {
		op := ops[i%len(ops)]
		v := values[(i*7)%len(values)]
		if op == mds.OpVersionGte {
			v = fmt.Sprint(8 + i%6)
		}
		pool = append(pool, mds.Rule{Field: fields[(i*3)%len(fields)], Operator: op, Values: []string{v}, Inverted: i%5 == 0})
	}
	cat := gray.NewCatalog(nil, nil)
	type taskRules struct {
		tg    *gray.Audience
		rules []*gray.Rule
	}
	var tasks []taskRules
	for i := range 30 {
		var rs []mds.Rule
		var fresh []*gray.Rule
		for j := range 6 {
			r := pool[(i*13+j*29)%len(pool)]
			rs = append(rs, r)
			c, err := gray.CompileRule(r)
			if err != nil {
				t.Fatal(err)
			}
			fresh = append(fresh, c)
		}
		task := &mds.Task{ID: int64(i + 1), AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Stage: mds.StageOfficial, Targeting: mds.Targeting{Rules: rs}}
		tg, err := cat.Compile(task)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, taskRules{tg, fresh})
	}
	for round := range 200 {
		d := phone()
		d.City, d.Model, d.Network = values[round%6], values[(round/6)%6], values[(round/36)%6]
		d.OSVersion = fmt.Sprint(7 + round%9)
		d.Attributes["tier"] = values[(round*5)%6]
		in := gray.NewInput(d, netip.Addr{}, now)
		for i, tr := range tasks {
			fresh := gray.NewInput(d, netip.Addr{}, now)
			if got, want := tr.tg.Decide(&in, nil), gray.Matches(tr.rules, &fresh); got != want {
				t.Fatalf("round %d, task %d: memoised %v, fresh %v", round, i, got, want)
			}
		}
	}
}

func TestNumbersArePlainDecimals(t *testing.T) {
	gt := must(gray.CompileRule(mds.Rule{Field: "attr.n", Operator: mds.OpNumGt, Values: []string{"1"}}))
	lte := must(gray.CompileRule(mds.Rule{Field: "attr.n", Operator: mds.OpNumLte, Values: []string{"1"}}))
	for v, want := range map[string]bool{"12": true, "1e3": true, "+2.5": true, "-7": false, "1": false,
		"inf": false, "Infinity": false, "+Inf": false, "NaN": false, "0x10": false, "0x1p4": false, "1_000": false,
		" 12": false, "12 ": false, "1e999": false, "": false} {
		d := phone()
		d.Attributes["n"] = v
		in := gray.NewInput(d, netip.Addr{}, now)
		// Something that is not a number is neither above nor at most 1.
		number := want || v == "-7" || v == "1"
		if got := gt.Match(&in); got != want {
			t.Errorf("%q NUM_GT 1: %v, want %v", v, got, want)
		}
		if got := lte.Match(&in); got != (number && !want) {
			t.Errorf("%q NUM_LTE 1: %v, want %v", v, got, number && !want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCaseInsensitiveLowerCases: /i compares both sides lower-cased, as
// Unleash does (toLowerCase), whatever the byte lengths of the cases, and
// IN/i gives one answer however many values it has.
func TestCaseInsensitiveLowerCases(t *testing.T) {
	long := strings.Repeat("Ä", 200) // 400 bytes: more than the stack buffer
	tests := []struct {
		op      mds.Operator
		operand string
		device  string
		want    bool
	}{
		{mds.OpStrContains, "ß", "STRAẞE", true}, // ẞ (3 bytes) lowers to ß (2 bytes)
		{mds.OpStrContains, "ẞ", "straße", true},
		{mds.OpStrStartsWith, "straße", "STRAẞE-1", true},
		{mds.OpStrEndsWith, "k", "PAC\u212a", true}, // the Kelvin sign lowers to an ASCII k
		{mds.OpStrContains, "\u212a", "kiwi", true},
		{mds.OpStrEndsWith, "ße", "STRAẞE", true},
		{mds.OpStrStartsWith, "sm-", "SM-S918B", true},
		{mds.OpStrStartsWith, "s", "ſ", false}, // ſ is lower case already, and lowers to itself
		{mds.OpStrContains, "ä", long + "x", true},
		{mds.OpStrEndsWith, "äx", long + "X", true},
		{mds.OpIn, "ſ", "s", false},
		{mds.OpIn, "ſ", "S", false},
		{mds.OpIn, "STRAẞE", "straße", true},
		{mds.OpIn, "\u212a", "k", true},
		{mds.OpIn, "k", "\u212a", true},
		{mds.OpIn, "ǅ", "ǆ", true},
		{mds.OpIn, "Shanghai", "SHANGHAI", true},
		{mds.OpIn, long, strings.ToLower(long), true},
		{mds.OpNotIn, "ſ", "s", true},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 50} { // a scan, and a map
			vals := []string{tt.operand}
			for i := 1; i < n; i++ {
				vals = append(vals, fmt.Sprint("other-", i))
			}
			r := must(gray.CompileRule(mds.Rule{Field: "model", Operator: tt.op, Values: vals, CaseInsensitive: true}))
			d := phone()
			d.Model = tt.device
			in := gray.NewInput(d, netip.Addr{}, now)
			if got := r.Match(&in); got != tt.want {
				t.Errorf("%q %s/i %q with %d values: %v, want %v", tt.device, tt.op, tt.operand, n, got, tt.want)
			}
		}
	}
}

// TestValidateImpliesCompile: every rule Validate accepts compiles, and
// CompileRule refuses exactly what Validate refuses, with its message.
func TestValidateImpliesCompile(t *testing.T) {
	samples := []string{"", " ", "x", " Shanghai ", "12", "-1.5e3", "inf", "NaN", "0x10", "1_0", "1.2.3", "1.2.3-rc.1",
		"1.2.3+", "1.2.3+a..b", "v1.2", "1..4", "1.0-", "2026-12-01T00:00:00Z", "2026-12-01", "10.0.0.0/8",
		"::ffff:10.0.0.0/104", "fe80::1%eth0", "10.0.0.0/33", "(", `^a\d+$`, "a{2,1}", "a,b", "\u202e", "x\ny"}
	fields := []string{"city", "attr.x", "ip", "now", "build", "os_version", "app_version"}
	checked, valid := 0, 0
	for _, op := range append(append([]mds.Operator{}, mds.Operators...), mds.OpCIDR, "LIKE") {
		for _, field := range fields {
			for i, a := range samples {
				b := samples[(i*7+3)%len(samples)]
				for _, vals := range [][]string{nil, {a}, {a, b}, {b, a, "x"}} {
					for _, fold := range []bool{false, true} {
						src := mds.Rule{Field: field, Operator: op, Values: vals, CaseInsensitive: fold}
						v := src
						verr := v.Validate()
						_, cerr := gray.CompileRule(src)
						checked++
						switch {
						case verr == nil && cerr != nil:
							t.Errorf("%+v: valid, but does not compile: %v", src, cerr)
						case verr != nil && (cerr == nil || cerr.Error() != verr.Error()):
							t.Errorf("%+v: Validate says %v, CompileRule %v", src, verr, cerr)
						case verr == nil:
							valid++
						}
					}
				}
			}
		}
	}
	if valid < 500 || valid == checked {
		t.Errorf("%d of %d rules valid; the samples no longer cover both sides", valid, checked)
	}
}

// TestMatchDoesNotAllocate holds every operator to the check path's
// promise for ASCII input, folded or not, scanned or mapped.
func TestMatchDoesNotAllocate(t *testing.T) {
	rules := []mds.Rule{
		{Field: "city", Operator: mds.OpIn, Values: []string{"Beijing", "Shanghai"}},
		{Field: "city", Operator: mds.OpIn, Values: []string{"beijing", "shanghai"}, CaseInsensitive: true},
		{Field: "city", Operator: mds.OpIn, Values: manyCities("SHANGHAI")},
		{Field: "city", Operator: mds.OpIn, Values: manyCities("SHANGHAI"), CaseInsensitive: true},
		{Field: "city", Operator: mds.OpNotIn, Values: manyCities("x"), CaseInsensitive: true},
		{Field: "model", Operator: mds.OpStrContains, Values: []string{"x", "918"}},
		{Field: "model", Operator: mds.OpStrContains, Values: []string{"x", "s918"}, CaseInsensitive: true},
		{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"sm-"}, CaseInsensitive: true},
		{Field: "model", Operator: mds.OpStrEndsWith, Values: []string{"918b"}, CaseInsensitive: true},
		{Field: "model", Operator: mds.OpStrEndsWith, Values: []string{"918B"}},
		{Field: "model", Operator: mds.OpRegex, Values: []string{`^sm-s9\d\d`}, CaseInsensitive: true},
		{Field: "attr.age", Operator: mds.OpNumGte, Values: []string{"18"}},
		{Field: "attr.tier", Operator: mds.OpNumGte, Values: []string{"18"}}, // not a number
		{Field: "build", Operator: mds.OpNumRange, Values: []string{"2000", "3000"}},
		{Field: "attr.age", Operator: mds.OpNumEq, Values: []string{"37.0"}},
		{Field: "attr.age", Operator: mds.OpNumGt, Values: []string{"-1e3"}},
		{Field: "attr.age", Operator: mds.OpNumLt, Values: []string{"40"}},
		{Field: "build", Operator: mds.OpNumLte, Values: []string{"2101"}},
		{Field: "app_version", Operator: mds.OpVersionEq, Values: []string{"2.10.1"}},
		{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}},
		{Field: "attr.age", Operator: mds.OpVersionLt, Values: []string{"40.1-beta"}},
		{Field: "app_version", Operator: mds.OpVersionGt, Values: []string{"2.9.2"}},
		{Field: "os_version", Operator: mds.OpVersionRange, Values: []string{"9", "15"}},
		{Field: "attr.sv", Operator: mds.OpVersionLte, Values: []string{"2"}},
		{Field: "attr.sv", Operator: mds.OpSemverEq, Values: []string{"1.2.3-rc.10"}},
		{Field: "attr.sv", Operator: mds.OpSemverGt, Values: []string{"1.2.3-rc.9"}},
		{Field: "attr.sv", Operator: mds.OpSemverGte, Values: []string{"1.2.3"}},
		{Field: "attr.sv", Operator: mds.OpSemverLt, Values: []string{"1.2.3"}},
		{Field: "attr.sv", Operator: mds.OpSemverLte, Values: []string{"1.2.3"}},
		{Field: "attr.tier", Operator: mds.OpSemverLte, Values: []string{"1.2.3"}}, // not a semantic version
		{Field: "now", Operator: mds.OpDateAfter, Values: []string{"2026-11-01T00:00:00Z"}},
		{Field: "attr.installed", Operator: mds.OpDateBefore, Values: []string{"2026-02-01T00:00:00Z"}},
		{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"10.0.0.0/8", "203.0.113.0/24"}},
		{Field: "attr.lan", Operator: mds.OpInCIDR, Values: []string{"192.168.0.0/16"}},
		{Field: "attr.missing", Operator: mds.OpStrContains, Values: []string{"x"}, Inverted: true},
	}
	ip := netip.MustParseAddr("203.0.113.9")
	d := phone()
	d.Model = strings.Repeat("SM-S918B/", mds.MaxDeviceField/9) // a long value, still within the buffer
	covered := map[mds.Operator]bool{}
	for _, src := range rules {
		r := must(gray.CompileRule(src))
		if allocs := testing.AllocsPerRun(100, func() {
			in := gray.NewInput(d, ip, now)
			r.Match(&in)
		}); allocs != 0 {
			t.Errorf("%s allocates %v times per match", r, allocs)
		}
		covered[src.Operator] = true
	}
	if len(covered) != len(mds.Operators) {
		t.Errorf("%d operators covered of %d", len(covered), len(mds.Operators))
	}
}

// TestExplainUnmapsAddress: a check and an explanation given an
// IPv4-mapped address read it alike, as IPv4, for the rendering IN
// compares and for IN_CIDR.
func TestExplainUnmapsAddress(t *testing.T) {
	tg := compile(t, &mds.Task{ID: 7, AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Stage: mds.StageOfficial,
		Targeting: mds.Targeting{Rules: []mds.Rule{
			{Field: "ip", Operator: mds.OpIn, Values: []string{"203.0.113.9"}},
			{Field: "ip", Operator: mds.OpInCIDR, Values: []string{"203.0.113.0/24"}},
		}}}, nil, nil)
	mapped := netip.MustParseAddr("::ffff:203.0.113.9")
	in := gray.NewInput(phone(), mapped, now)
	if !tg.Decide(&in, nil) {
		t.Error("a check from an IPv4-mapped address missed the rules of its IPv4 address")
	}
	ok, steps := tg.Explain(ptr(gray.NewInput(phone(), mapped, now)), nil)
	if !ok || len(steps) < 1 || !strings.Contains(steps[0].Detail, `device has "203.0.113.9"`) {
		t.Errorf("explain of an IPv4-mapped address: %v %+v", ok, steps)
	}
}

// TestRuleStringIsTheCommandLineForm: explanations show a rule as
// mds.Rule renders it, with long value lists cut short in that one place.
func TestRuleStringIsTheCommandLineForm(t *testing.T) {
	src := mds.Rule{Field: "city", Operator: mds.OpIn, Values: manyCities("Shanghai"), CaseInsensitive: true, Inverted: true}
	r := must(gray.CompileRule(src))
	want := "not city IN/i Shanghai,city-0,city-1,city-2,city-3,… (51 values)"
	if r.String() != want || r.String() != src.Summary(5) {
		t.Errorf("String = %q, want %q", r.String(), want)
	}
	cidr := must(gray.CompileRule(mds.Rule{Field: "ip", Operator: mds.OpCIDR, Values: []string{" 10.0.0.0/8"}}))
	if got := cidr.String(); got != "ip IN_CIDR 10.0.0.0/8" {
		t.Errorf("String of a normalised rule = %q", got)
	}
	if back, err := mds.ParseRule(cidr.String()); err != nil || back.Operator != mds.OpInCIDR {
		t.Errorf("ParseRule(%q) = %+v, %v", cidr.String(), back, err)
	}
}

// TestEveryone: only an official release without rules, its own or a
// rule set's, admits every device without deciding; Decide agrees where
// it says so.
func TestEveryone(t *testing.T) {
	rule := []mds.Rule{{Field: mds.FieldNetwork, Operator: mds.OpIn, Values: []string{"wifi"}}}
	sets := map[int64]*mds.RuleSet{9: {ID: 9, AppID: 1, Name: "wifi", Rules: rule}}
	b := gray.NewListBuilder(&mds.Whitelist{ID: 3, AppID: 1, Name: "testers", Kind: mds.WhitelistUsers}, 0)
	if err := b.Add("alice"); err != nil {
		t.Fatal(err)
	}
	lists := map[int64]*gray.List{3: b.Build()}
	for _, c := range []struct {
		stage mds.Stage
		tg    mds.Targeting
		want  bool
	}{
		{mds.StageOfficial, mds.Targeting{}, true},
		{mds.StageOfficial, mds.Targeting{Rules: rule}, false},
		{mds.StageOfficial, mds.Targeting{RuleSets: []int64{9}}, false},
		{mds.StageGray, mds.Targeting{Whitelists: []int64{3}}, false},
		{mds.StageGray, mds.Targeting{Rollout: &mds.Rollout{Percent: 100, Stickiness: mds.StickyDevice}}, false},
	} {
		task := grayTask(c.tg)
		task.Stage = c.stage
		a := compile(t, task, sets, lists)
		if a.Everyone() != c.want {
			t.Errorf("%s %+v: Everyone %v, want %v", c.stage, c.tg, a.Everyone(), c.want)
		}
		in := gray.NewInput(phone(), netip.Addr{}, now)
		if c.want && !a.Decide(&in, nil) {
			t.Errorf("%s %+v: Everyone, yet Decide refuses a device", c.stage, c.tg)
		}
	}
}

// TestBucketSharedBySalt: one input asked by tasks of one salt and of
// others, in any order, decides each as its own bucket says.
func TestBucketSharedBySalt(t *testing.T) {
	cat := gray.NewCatalog(nil, nil)
	var tasks []*gray.Audience
	var salts []string
	var percents []float64
	for i := range 12 {
		salt := []string{"config-1", "config-1", "other"}[i%3]
		task := grayTask(mds.Targeting{Rollout: &mds.Rollout{Percent: float64(5 + 8*i)}})
		task.Targeting.Salt = salt
		a, err := cat.Compile(task)
		if err != nil {
			t.Fatal(err)
		}
		tasks, salts, percents = append(tasks, a), append(salts, salt), append(percents, float64(5+8*i))
	}
	for d := range 300 {
		dev := &mds.Device{DeviceID: fmt.Sprintf("dev-%d", d), Platform: mds.Android, AppVersion: "1.0"}
		in := gray.NewInput(dev, netip.Addr{}, time.Now())
		for i, a := range tasks {
			want := float64(gray.Bucket(salts[i], dev.DeviceID)) < percents[i]*100
			if got := a.Decide(&in, nil); got != want {
				t.Fatalf("device %s, task %d (salt %s, %v%%): %v, want %v", dev.DeviceID, i, salts[i], percents[i], got, want)
			}
		}
	}
}
