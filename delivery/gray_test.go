package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
)

// memAdmissions is an mds.AdmissionStore in memory that counts its calls.
// Like the databases, it is the source of truth: a batch takes places while
// they last and the window is not sealed, atomically.
type memAdmissions struct {
	mu      sync.Mutex
	devices map[int64]map[string]bool
	sealed  map[int64]time.Time
	admits  atomic.Int64
	reads   atomic.Int64
	seals   atomic.Int64
	fail    bool
	delay   time.Duration // before each call reaches the store, as a network would
	window  mds.Window    // the window every task has, in the store
}

func (m *memAdmissions) Admit(_ context.Context, r mds.Admission) ([]bool, error) {
	m.admits.Add(1)
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, errors.New("database down")
	}
	if m.devices == nil {
		m.devices = map[int64]map[string]bool{}
	}
	if m.devices[r.TaskID] == nil {
		m.devices[r.TaskID] = map[string]bool{}
	}
	in := m.devices[r.TaskID]
	sealed := !m.sealed[r.TaskID].IsZero() && !m.sealed[r.TaskID].Before(m.window.End)
	out := make([]bool, len(r.Devices))
	for i, d := range r.Devices {
		switch {
		case in[d]:
			out[i] = true
		case sealed || len(in) >= m.window.Cap:
		default:
			in[d], out[i] = true, true
		}
	}
	return out, nil
}

func (m *memAdmissions) SealWindow(_ context.Context, task int64, end time.Time) error {
	m.seals.Add(1)
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("database down")
	}
	if m.sealed == nil {
		m.sealed = map[int64]time.Time{}
	}
	if end.After(m.sealed[task]) {
		m.sealed[task] = end
	}
	return nil
}

func (m *memAdmissions) Admitted(_ context.Context, task int64, fn func(string) error) error {
	m.reads.Add(1)
	time.Sleep(m.delay)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return errors.New("database down")
	}
	for d := range m.devices[task] {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

func (m *memAdmissions) AdmissionStatus(_ context.Context, task int64, device string) (bool, int, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[task][device], len(m.devices[task]), nil
}

func (m *memAdmissions) calls() int64 { return m.admits.Load() + m.reads.Load() + m.seals.Load() }

// clock is a clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// windowFixture is one app with one live task whose only gate is a capped window.
func windowFixture(t testing.TB, cap int) (*delivery.Snapshot, *mds.Task, *mds.Window) {
	var f fixture
	a := f.app("a", mds.Android)
	task := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mds.ModeForce, mds.StatusLive)
	w := &mds.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Cap: cap}
	task.Stage, task.Targeting = mds.StageGray, mds.Targeting{Window: w, Salt: "s"}
	return f.compile(t), task, w
}

func checkAt(s *delivery.Snapshot, adm gray.Admitter, deviceID string, at time.Time) bool {
	d := device("a", mds.Android, "1.0")
	d.DeviceID = deviceID
	in := gray.NewInput(d, netip.Addr{}, at)
	var dec delivery.Decision
	err := s.Evaluate(&in, adm, &dec)
	return err == nil && dec.Upgrade.Offer != nil
}

// TestWindowCapAcrossNodes runs checks on three "nodes" (three Admissions
// over one store) from many goroutines: exactly cap distinct devices get
// the task, they keep it after the window closes on every node, and the
// store sees a bounded number of calls.
func TestWindowCapAcrossNodes(t *testing.T) {
	const cap, devices = 40, 200
	s, _, w := windowFixture(t, cap)
	store := &memAdmissions{window: *w}
	clk := &clock{t: now}
	nodes := []*delivery.Admissions{
		delivery.NewAdmissions(store, clk.now, func(err error) { t.Error(err) }),
		delivery.NewAdmissions(store, clk.now, func(err error) { t.Error(err) }),
		delivery.NewAdmissions(store, clk.now, func(err error) { t.Error(err) }),
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]bool{}
	for g := range 24 {
		wg.Go(func() {
			for i := range devices {
				id := fmt.Sprintf("device-%03d", (i*7+g)%devices)
				if checkAt(s, nodes[(i+g)%3], id, now) {
					mu.Lock()
					got[id] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(got) != cap {
		t.Fatalf("%d devices got the task, want exactly %d", len(got), cap)
	}
	// Each node's calls: one per device it learnt of, plus the call that
	// found the window full and the read that followed.
	if calls, bound := store.calls(), int64(len(nodes)*(cap+2)); calls > bound {
		t.Errorf("%d store calls for %d nodes and a cap of %d; the bound is %d", calls, len(nodes), cap, bound)
	}
	admits := store.admits.Load()
	// After the window: admitted devices keep it on every node, others
	// never get it, and memory answers after one seal and read per node.
	later := now.Add(2 * time.Hour)
	clk.set(later)
	reads := store.reads.Load()
	for round := range 3 {
		for i := range devices {
			id := fmt.Sprintf("device-%03d", i)
			for n, node := range nodes {
				if checkAt(s, node, id, later) != got[id] {
					t.Fatalf("round %d, node %d: device %s after the window: got %v, want %v", round, n, id, !got[id], got[id])
				}
			}
		}
	}
	if extra := store.reads.Load() - reads; extra > 0 {
		t.Errorf("%d store reads after the window closed; a full window's set is final, so none were needed", extra)
	}
	if store.admits.Load() != admits {
		t.Error("admissions were attempted after the window closed")
	}
}

// TestWindowSurvivesRestart: a fresh node (empty memory) over the same
// store honours earlier admissions and the cap.
func TestWindowSurvivesRestart(t *testing.T) {
	s, _, w := windowFixture(t, 3)
	store := &memAdmissions{window: *w}
	first := delivery.NewAdmissions(store, nil, nil)
	for _, id := range []string{"a", "b", "c"} {
		if !checkAt(s, first, id, now) {
			t.Fatalf("device %s not admitted", id)
		}
	}
	restarted := delivery.NewAdmissions(store, nil, nil)
	if !checkAt(s, restarted, "b", now) || checkAt(s, restarted, "d", now) {
		t.Error("after a restart the window forgot its admissions or its cap")
	}
	if !checkAt(s, restarted, "c", now.Add(3*time.Hour)) || checkAt(s, restarted, "d", now.Add(3*time.Hour)) {
		t.Error("after a restart and the window's end, admissions were wrong")
	}
}

func TestWindowStoreFailureAdmitsNoOne(t *testing.T) {
	s, _, w := windowFixture(t, 3)
	var errs int
	store := &memAdmissions{window: *w, fail: true}
	node := delivery.NewAdmissions(store, func() time.Time { return now }, func(error) { errs++ })
	if checkAt(s, node, "a", now) || errs != 1 {
		t.Errorf("with the store down a device was admitted, or the failure not reported (%d)", errs)
	}
	// Right after a failure the window does not queue more store calls.
	calls := store.admits.Load()
	for _, id := range []string{"b", "c", "d"} {
		if checkAt(s, node, id, now) {
			t.Errorf("device %s admitted while the store is down", id)
		}
	}
	if store.admits.Load() != calls {
		t.Errorf("%d more store calls within a second of a failure", store.admits.Load()-calls)
	}
}

// TestSlowStoreDoesNotBlockMemory: while new devices wait on a slow store,
// a device this node already admitted is answered at once.
func TestSlowStoreDoesNotBlockMemory(t *testing.T) {
	s, _, w := windowFixture(t, 100)
	store := &memAdmissions{window: *w}
	node := delivery.NewAdmissions(store, nil, nil)
	if !checkAt(s, node, "known", now) {
		t.Fatal("first device not admitted")
	}
	store.delay = 300 * time.Millisecond
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() { checkAt(s, node, fmt.Sprintf("new-%d", i), now) })
	}
	time.Sleep(50 * time.Millisecond) // the new devices are now waiting on the store
	start := time.Now()
	if !checkAt(s, node, "known", now) {
		t.Error("admitted device refused")
	}
	if waited := time.Since(start); waited > 100*time.Millisecond {
		t.Errorf("an admitted device waited %v behind slow store calls", waited)
	}
	wg.Wait()
}

func TestGrayOffersFallThrough(t *testing.T) {
	var f fixture
	a := f.app("a", mds.Android)
	stable := f.offer(a, pkg{platform: mds.Android, version: "2.0"}, mds.ModeMultiple, mds.StatusLive)
	beta := f.offer(a, pkg{platform: mds.Android, version: "3.0"}, mds.ModeMultiple, mds.StatusLive)
	beta.Stage = mds.StageGray
	beta.Targeting = mds.Targeting{Rollout: &mds.Rollout{Percent: 0}, Salt: "s",
		Rules: []mds.Rule{{Field: "model", Operator: mds.OpStrStartsWith, Values: []string{"Pixel"}}}}
	s := f.compile(t)
	d, _ := evaluate(s, device("a", mds.Android, "1.0"), now)
	if d.Offer == nil || d.Offer.Task.ID != stable.ID {
		t.Fatalf("a device outside the 0%% gray of 3.0 should get 2.0, got %+v", d.Offer)
	}
	beta.Stage = mds.StageOfficial // promoted: rules still apply
	s = f.compile(t)
	pixel := device("a", mds.Android, "1.0")
	pixel.Model = "Pixel 9"
	if d, _ := evaluate(s, pixel, now); d.Offer == nil || d.Offer.Task.ID != beta.ID {
		t.Errorf("a Pixel should get the promoted 3.0: %+v", d.Offer)
	}
	if d, _ := evaluate(s, device("a", mds.Android, "1.0"), now); d.Offer == nil || d.Offer.Task.ID != stable.ID {
		t.Errorf("a non-Pixel should still get 2.0: %+v", d.Offer)
	}

	ex, err := s.Explain(ptr(gray.NewInput(pixel, netip.Addr{}, now)), nil)
	if err != nil || len(ex) != 2 {
		t.Fatalf("Explain: %v %+v", err, ex)
	}
	if ex[0].TaskID != beta.ID || !ex[0].Matched || !ex[0].Chosen || ex[1].TaskID != stable.ID || !ex[1].Matched || ex[1].Chosen {
		t.Errorf("explanations out of priority order or wrong: %+v", ex)
	}
	current := device("a", mds.Android, "3.0")
	ex, _ = s.Explain(ptr(gray.NewInput(current, netip.Addr{}, now)), nil)
	if ex[0].Matched || !strings.Contains(ex[0].Steps[0].Detail, "not newer") {
		t.Errorf("a device on 3.0: %+v", ex[0])
	}
	if _, err := s.Explain(ptr(gray.NewInput(device("nope", mds.Android, "1"), netip.Addr{}, now)), nil); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("unknown app: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRecentIsBounded(t *testing.T) {
	r := delivery.NewRecent(1<<20, 5, 2)
	for i := range 100 {
		d := device("a", mds.Android, "1.0")
		d.DeviceID = fmt.Sprintf("d%d", i)
		d.LastReminded = &mds.Reminder{TaskID: 1}
		r.Record(1, ptr(gray.NewInput(d, netip.Addr{}, now)))
	}
	got := r.Sample(1)
	if len(got) != 5 {
		t.Fatalf("sample holds %d devices, want 5", len(got))
	}
	parity := -1
	for _, s := range got {
		if s.Device.LastReminded != nil {
			t.Error("the sample keeps reminder state it does not need")
		}
		var n int
		fmt.Sscanf(s.Device.DeviceID, "d%d", &n)
		if n < 90 || parity >= 0 && n%2 != parity {
			t.Errorf("sample holds %s; want recent, every other check", s.Device.DeviceID)
		}
		parity = n % 2
	}
	if r.Sample(2) != nil {
		t.Error("an app never seen has a sample")
	}
	// Until an app's sample is full, every check counts: a preview after
	// two checks sees two devices.
	fresh := delivery.NewRecent(1<<20, 2000, 8)
	for i := range 2 {
		d := device("b", mds.Android, "1.0")
		d.DeviceID = fmt.Sprintf("d%d", i)
		fresh.Record(3, ptr(gray.NewInput(d, netip.Addr{}, now)))
	}
	if n := len(fresh.Sample(3)); n != 2 {
		t.Errorf("after two checks the sample holds %d devices, want 2", n)
	}
}

// TestRecentKeepsWhatTargetingReads: a sampled device comes back as it
// checked, but for what targeting never reads, and owns its memory.
func TestRecentKeepsWhatTargetingReads(t *testing.T) {
	r := delivery.NewRecent(1<<20, 10, 1)
	body := []byte("shop-device-7")
	d := &mds.Device{AppKey: "ak", Platform: mds.IOS, AppVersion: "2.1.0", Build: 210, DeviceID: string(body[5:]),
		UserID: "u1", Model: "iPhone17,1", Brand: "Apple", OSVersion: "18.1", Network: "wifi", Region: "CN-31", City: "上海",
		Channel: "store", Language: "zh-CN", Attributes: map[string]string{"tier": "gold"}, LastReminded: &mds.Reminder{TaskID: 3}}
	ip := netip.MustParseAddr("2001:db8::7")
	r.Record(1, ptr(gray.NewInput(d, ip, now)))
	d.DeviceID = "changed"
	got := r.Sample(1)
	want := *d
	want.DeviceID, want.LastReminded = "device-7", nil
	if len(got) != 1 || !reflect.DeepEqual(got[0].Device, want) || got[0].IP != ip {
		t.Fatalf("sample %+v, want %+v at %s", got, want, ip)
	}
	many := device("ak", mds.Android, "1")
	many.Attributes = map[string]string{}
	for i := range 40 {
		many.Attributes[fmt.Sprint("a", i)] = "v"
	}
	r.Record(1, ptr(gray.NewInput(many, netip.Addr{}, now)))
	if n := len(r.Sample(1)[1].Device.Attributes); n != 16 {
		t.Errorf("a sampled device keeps %d attributes, want 16", n)
	}
}

// TestRecentBudget: the whole sample stays within its byte budget however
// many apps check, shares it evenly, and records nothing once full but
// in place of what it drops.
func TestRecentBudget(t *testing.T) {
	const budget = 200_000
	r := delivery.NewRecent(budget, 2000, 1)
	d := device("a", mds.Android, "1.0")
	d.Attributes = map[string]string{"tier": "gold", "plan": "family"}
	for round := range 3 {
		for app := range 300 {
			for i := range 50 {
				d.DeviceID = fmt.Sprintf("device-%d-%d-%d", round, app, i)
				r.Record(int64(app), ptr(gray.NewInput(d, netip.MustParseAddr("10.0.0.1"), now)))
			}
			if b := r.Bytes(); b > budget {
				t.Fatalf("round %d, %d apps: the sample holds %d bytes, over its budget of %d", round, app+1, b, budget)
			}
		}
	}
	first, last := len(r.Sample(0)), len(r.Sample(299))
	if first == 0 || first != last {
		t.Errorf("the first app keeps %d devices and the last %d: want an even, non-empty share", first, last)
	}
	if b := r.Bytes(); b < budget*9/10 {
		t.Errorf("the full sample holds %d bytes of its %d: the budget is not used", b, budget)
	}
	d.DeviceID = "device-steady"
	in := gray.NewInput(d, netip.MustParseAddr("10.0.0.1"), now)
	if allocs := testing.AllocsPerRun(1000, func() { r.Record(7, &in) }); allocs != 0 {
		t.Errorf("recording into a full sample allocates %.1f times", allocs)
	}
}

// listLive is a LiveStore with one whitelist, counting its loads.
type listLive struct {
	fakeLive
	version   int64
	listLoads int
}

func (l *listLive) LoadWhitelist(_ context.Context, id int64, fn func(string) error) (int64, error) {
	l.listLoads++
	for i := range 1000 {
		if err := fn(fmt.Sprintf("user-%d", i)); err != nil {
			return 0, err
		}
	}
	return l.version, nil
}

func (l *listLive) LoadLive(ctx context.Context, since int64, again ...int64) (*mds.LiveSet, error) {
	set, err := l.fakeLive.LoadLive(ctx, since, again...)
	if set != nil && set.Full {
		set.Whitelists = []*mds.Whitelist{{ID: 5, AppID: 1, Name: "testers", Kind: mds.WhitelistUsers, Entries: 1000, Version: l.version}}
	}
	return set, err
}

// TestLiveReusesWhitelists: editing a task next to a whitelist does not
// reload the whitelist; changing the whitelist does.
func TestLiveReusesWhitelists(t *testing.T) {
	src := &listLive{version: 1}
	src.set = mds.LiveSet{Revision: 1,
		Apps:      []*mds.App{{ID: 1, Key: "a", Platforms: []mds.Platform{mds.Android}}},
		Artifacts: []*mds.Artifact{urlPackage(2, "2.0")},
		Tasks: []*mds.Task{{ID: 3, AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 2, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Status: mds.StatusLive, Stage: mds.StageGray,
			Targeting: mds.Targeting{Whitelists: []int64{5}}}}}
	l := delivery.NewLive(src)
	ctx := context.Background()
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	listed := device("a", mds.Android, "1.0")
	listed.UserID = "user-7"
	if d, _ := evaluate(l.Current(), listed, now); d.Offer == nil {
		t.Fatal("whitelisted user not offered the task")
	}
	src.setRevision(2) // a task edit
	src.set.Tasks[0].Policy = &mds.UpgradePolicy{Mode: mds.ModeMultiple}
	if err := l.Refresh(ctx); err != nil || src.listLoads != 1 {
		t.Errorf("after a task edit: %d whitelist loads (want 1), %v", src.listLoads, err)
	}
	src.version = 2 // a whitelist edit
	src.setRevision(3)
	if err := l.Refresh(ctx); err != nil || src.listLoads != 2 {
		t.Errorf("after a whitelist edit: %d whitelist loads (want 2), %v", src.listLoads, err)
	}
}

// brokenList fails to load its whitelist.
type brokenList struct{ listLive }

func (b *brokenList) LoadWhitelist(context.Context, int64, func(string) error) (int64, error) {
	return 0, errors.New("disk on fire")
}

// TestBrokenWhitelistSkipsItsTasks: a whitelist that cannot be loaded
// takes out the tasks using it, not the snapshot of every app.
func TestBrokenWhitelistSkipsItsTasks(t *testing.T) {
	src := &brokenList{listLive{version: 1}}
	src.set = mds.LiveSet{Revision: 1,
		Apps:      []*mds.App{{ID: 1, Key: "a", Platforms: []mds.Platform{mds.Android}}},
		Artifacts: []*mds.Artifact{urlPackage(2, "2.0"), urlPackage(4, "1.5")},
		Tasks: []*mds.Task{{ID: 3, AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 2, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Status: mds.StatusLive, Stage: mds.StageGray,
			Targeting: mds.Targeting{Whitelists: []int64{5}}},
			{ID: 5, AppID: 1, Kind: mds.KindUpgrade, ArtifactID: 4, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Status: mds.StatusLive, Stage: mds.StageOfficial}}}
	l := delivery.NewLive(src)
	var problems []error
	l.OnProblem = func(err error) { problems = append(problems, err) }
	if err := l.Refresh(context.Background()); err != nil {
		t.Fatalf("a broken whitelist failed the whole refresh: %v", err)
	}
	if d, _ := evaluate(l.Current(), device("a", mds.Android, "1.0"), now); d.Offer == nil || d.Offer.Task.ID != 5 {
		t.Errorf("the official task did not survive its broken neighbour: %+v", d.Offer)
	}
	if len(problems) != 2 {
		t.Errorf("problems reported: %v; want the load failure and the skipped task", problems)
	}
}

// urlPackage is upgrade package id of app 1 on android, hosted elsewhere.
func urlPackage(id int64, v string) *mds.Artifact {
	return &mds.Artifact{ID: id, AppID: 1, Kind: mds.KindUpgrade, Platform: mds.Android, Version: v,
		Spec: &mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x"}}
}

// TestAdmissionCallsAreBounded: many devices arriving at once at a small
// window cost a handful of store calls, not one (and a full read) each.
// The bound per node and window is the admitted devices plus 4.
func TestAdmissionCallsAreBounded(t *testing.T) {
	const cap, devices = 5, 100
	for _, nodes := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			s, _, w := windowFixture(t, cap)
			store := &memAdmissions{window: *w, delay: 20 * time.Millisecond}
			var adm []*delivery.Admissions
			for range nodes {
				adm = append(adm, delivery.NewAdmissions(store, func() time.Time { return now }, func(err error) { t.Error(err) }))
			}
			var wg sync.WaitGroup
			var in atomic.Int64
			for i := range devices {
				wg.Go(func() {
					if checkAt(s, adm[i%nodes], fmt.Sprintf("device-%03d", i), now) {
						in.Add(1)
					}
				})
			}
			wg.Wait()
			if in.Load() != cap {
				t.Errorf("%d devices admitted, want %d", in.Load(), cap)
			}
			if calls, bound := store.calls(), int64(nodes*(cap+4)); calls > bound {
				t.Errorf("%d store calls (%d admit, %d read) for %d devices; the bound is %d", calls, store.admits.Load(), store.reads.Load(), devices, bound)
			}
			// Every node now answers every device from memory, the same way.
			before := store.calls()
			for i := range devices {
				id := fmt.Sprintf("device-%03d", i)
				want := checkAt(s, adm[0], id, now)
				for _, node := range adm[1:] {
					if checkAt(s, node, id, now) != want {
						t.Fatalf("nodes disagree on %s", id)
					}
				}
			}
			if extra := store.calls() - before; extra > int64(nodes) {
				t.Errorf("%d more store calls for devices already decided", extra)
			}
		})
	}
}

// TestWindowEndRace: a node admits a device just before the window ends
// while its store call is slow; another node, past the end, settles the
// window. The store decides, so both nodes agree on that device for good.
func TestWindowEndRace(t *testing.T) {
	s, _, w := windowFixture(t, 100)
	for round := range 20 {
		store := &memAdmissions{window: *w}
		late := delivery.NewAdmissions(store, func() time.Time { return w.End.Add(time.Millisecond) }, nil)
		early := delivery.NewAdmissions(store, func() time.Time { return w.End.Add(-time.Millisecond) }, nil)
		store.delay = time.Duration(round) * time.Millisecond
		id := fmt.Sprintf("device-%d", round)
		var wg sync.WaitGroup
		var admitted, settled bool
		wg.Go(func() { admitted = checkAt(s, early, id, w.End.Add(-time.Millisecond)) })
		wg.Go(func() {
			time.Sleep(time.Duration(round%5) * time.Millisecond)
			settled = checkAt(s, late, id, w.End.Add(time.Millisecond))
		})
		wg.Wait()
		store.delay = 0
		after := w.End.Add(time.Hour)
		onLate, onEarly := checkAt(s, late, id, after), checkAt(s, early, id, after)
		if admitted != onLate || onLate != onEarly || settled && !admitted {
			t.Fatalf("round %d: admitted before the end %v, after it on the settling node %v and on the admitting node %v (first answer %v)",
				round, admitted, onLate, onEarly, settled)
		}
	}
}

// setWindow edits the store's window, as an operator would, and returns how
// many devices it holds at that moment.
func (m *memAdmissions) setWindow(task int64, w mds.Window) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.window = w
	return len(m.devices[task])
}

// TestWindowEditTakesEffect: lowering a busy window's cap stops admissions
// at once, for checks on the old snapshot and the new alike: the store
// admits by the window it holds, not by what a batch queued before the
// edit carried.
func TestWindowEditTakesEffect(t *testing.T) {
	_, task, w := windowFixture(t, 100_000)
	store := &memAdmissions{window: *w, delay: 5 * time.Millisecond}
	adm := delivery.NewAdmissions(store, func() time.Time { return now }, nil)
	lowered := *w
	lowered.Cap = 10
	var spec atomic.Pointer[mds.Window]
	spec.Store(w)
	var edited atomic.Bool
	var after atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := 0; i < 10_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wasEdited := edited.Load()
				if adm.Admit(task.ID, spec.Load(), fmt.Sprintf("d-%d-%d", g, i), now) && wasEdited {
					after.Add(1)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	before := store.setWindow(task.ID, lowered)
	edited.Store(true)
	spec.Store(&lowered)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	store.mu.Lock()
	total := len(store.devices[task.ID])
	store.mu.Unlock()
	if before == 0 || total != before || after.Load() != 0 {
		t.Errorf("%d devices in when the cap went down to 10, %d at the end, %d checks admitted after the edit; want none more", before, total, after.Load())
	}
}
