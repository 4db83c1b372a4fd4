package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
)

// The snapshot builder over a real store: a write loads and recompiles the
// app it changed and no other, and whatever the writes, a snapshot built
// change by change equals one built from everything.

// testLoadChanges: LoadLive since a revision reads the apps changed after
// it, names the deleted ones, and reads nothing when nothing changed.
func testLoadChanges(t *testing.T, s mds.Store) {
	shop, blog, gone := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog"), MustCreateApp(t, s, "gone")
	shopTask := MustCreateTask(t, s, MustCreatePackage(t, s, shop, "2.0"))
	blogTask := MustCreateTask(t, s, MustCreatePackage(t, s, blog, "2.0"))
	for _, task := range []*mds.Task{shopTask, blogTask} {
		if _, err := apply(s, task, mds.ActionRelease); err != nil {
			t.Fatal(err)
		}
	}
	since := revision(t, s)
	if set, err := s.LoadLive(ctx(), since); err != nil || set.Full || len(set.Changed) != 0 || len(set.Apps) != 0 || set.Revision != since {
		t.Fatalf("LoadLive with nothing changed = %+v, %v; want nothing at revision %d", set, err, since)
	}
	if _, err := apply(s, shopTask, mds.ActionPause); err != nil {
		t.Fatal(err)
	}
	set, err := s.LoadLive(ctx(), since)
	if err != nil {
		t.Fatal(err)
	}
	if set.Full || !slices.Equal(set.Changed, []int64{shop.ID}) || len(set.Apps) != 1 || set.Apps[0].ID != shop.ID ||
		len(set.Tasks) != 0 || len(set.Artifacts) != 0 || set.Revision != revision(t, s) {
		t.Errorf("after pausing shop's task: %+v; want shop alone, without live tasks", set)
	}
	if _, err := apply(s, shopTask, mds.ActionResume); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx(), gone.ID); err != nil {
		t.Fatal(err)
	}
	set, err = s.LoadLive(ctx(), since)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(set.Changed)
	if set.Full || !slices.Equal(set.Changed, []int64{shop.ID, gone.ID}) || len(set.Apps) != 1 || set.Apps[0].ID != shop.ID ||
		len(set.Tasks) != 1 || set.Tasks[0].ID != shopTask.ID || len(set.Artifacts) != 1 {
		t.Errorf("after resuming shop's task and deleting gone: %+v; want both named, shop with its task, gone absent", set)
	}
	if set, err := s.LoadLive(ctx(), 0); err != nil || !set.Full || len(set.Apps) != 2 || len(set.Tasks) != 2 {
		t.Errorf("LoadLive from nothing = %+v, %v; want both apps and their tasks", set, err)
	}
}

// testLoadAgain: LoadLive reads the apps asked for again whether or not
// they changed, beside those the change log names, names a deleted one
// as deleted, and reads everything when asked for more than a few apps.
func testLoadAgain(t *testing.T, s mds.Store) {
	shop, blog, gone := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog"), MustCreateApp(t, s, "gone")
	shopTask := MustCreateTask(t, s, MustCreatePackage(t, s, shop, "2.0"))
	if _, err := apply(s, shopTask, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx(), gone.ID); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	set, err := s.LoadLive(ctx(), rev, shop.ID, gone.ID)
	if err != nil || set.Full || set.Revision != rev {
		t.Fatalf("LoadLive at the revision, again shop and gone = %+v, %v; want those two at revision %d", set, err, rev)
	}
	slices.Sort(set.Changed)
	if !slices.Equal(set.Changed, []int64{shop.ID, gone.ID}) || len(set.Apps) != 1 || set.Apps[0].ID != shop.ID ||
		len(set.Tasks) != 1 || set.Tasks[0].ID != shopTask.ID || len(set.Artifacts) != 1 {
		t.Errorf("again shop and gone: %+v; want both named, shop with its task, gone absent", set)
	}
	if _, err := s.UpdateApp(ctx(), blog.ID, func(a *mds.App) error { a.Name = "The Blog"; return nil }); err != nil {
		t.Fatal(err)
	}
	set, err = s.LoadLive(ctx(), rev, shop.ID)
	if err != nil || set.Full {
		t.Fatalf("LoadLive after a write to blog, again shop = %+v, %v", set, err)
	}
	slices.Sort(set.Changed)
	if !slices.Equal(set.Changed, []int64{shop.ID, blog.ID}) || len(set.Apps) != 2 {
		t.Errorf("after a write to blog, again shop: %+v; want both", set)
	}
	many := []int64{shop.ID}
	for id := range int64(200) {
		many = append(many, 1000+id) // IDs no app has: as good as deleted
	}
	if set, err := s.LoadLive(ctx(), revision(t, s), many...); err != nil || !set.Full || len(set.Apps) != 2 {
		t.Errorf("LoadLive again 201 apps = %+v, %v; want everything", set, err)
	}
}

// ChangeLogger is a store whose change log can be shortened, so that the
// suite can reach its end without ten thousand writes.
type ChangeLogger interface {
	SetChangeLog(keep int64)
}

// testChangeLogEnds: a node further behind than the change log reaches
// reloads everything.
func testChangeLogEnds(t *testing.T, s mds.Store) {
	cl, ok := s.(ChangeLogger)
	if !ok {
		t.Fatalf("%T cannot shorten its change log (storetest.ChangeLogger)", s)
	}
	cl.SetChangeLog(3)
	a := MustCreateApp(t, s, "shop")
	since := revision(t, s)
	for _, slug := range []string{"b", "c"} {
		MustCreateApp(t, s, slug)
	}
	if set, err := s.LoadLive(ctx(), since); err != nil || set.Full || len(set.Changed) != 2 {
		t.Fatalf("two writes behind: %+v, %v; want the two apps", set, err)
	}
	MustCreateApp(t, s, "d")
	MustCreateApp(t, s, "e")
	set, err := s.LoadLive(ctx(), since)
	if err != nil || !set.Full || len(set.Apps) != 5 {
		t.Errorf("four writes behind a log of three: %+v, %v; want everything", set, err)
	}
	if _, err := s.UpdateApp(ctx(), a.ID, func(a *mds.App) error { a.Name = "Shop"; return nil }); err != nil {
		t.Fatal(err)
	}
	if set, err := s.LoadLive(ctx(), revision(t, s)-3); err != nil || set.Full || len(set.Changed) != 3 {
		t.Errorf("three writes behind a log of three: %+v, %v; want the three apps", set, err)
	}
}

// RecordingLive is a LiveStore that remembers the last set that read
// anything and counts whitelist loads: what a node read, for tests that
// check a write made it read one app alone.
type RecordingLive struct {
	mds.LiveStore
	mu            sync.Mutex
	last          *mds.LiveSet
	full, partial int
	lists         atomic.Int64
}

func (r *RecordingLive) LoadLive(ctx context.Context, since int64, again ...int64) (*mds.LiveSet, error) {
	set, err := r.LiveStore.LoadLive(ctx, since, again...)
	if err == nil && (set.Full || len(set.Changed) > 0) {
		r.mu.Lock()
		r.last = set
		if set.Full {
			r.full++
		} else {
			r.partial++
		}
		r.mu.Unlock()
	}
	return set, err
}

// Loads is how many loads read everything and how many read some apps.
func (r *RecordingLive) Loads() (full, partial int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.full, r.partial
}

func (r *RecordingLive) LoadWhitelist(ctx context.Context, id int64, fn func(string) error) (int64, error) {
	r.lists.Add(1)
	return r.LiveStore.LoadWhitelist(ctx, id, fn)
}

// Last is the last set that read anything, or nil.
func (r *RecordingLive) Last() *mds.LiveSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// WhitelistLoads is how many whitelists were read.
func (r *RecordingLive) WhitelistLoads() int64 { return r.lists.Load() }

// testWriteRecompilesItsApp: a write to app A loads and recompiles A alone;
// B's offers are the very same objects in the next snapshot (and so is
// what the transport memoised on them), and B's whitelist is not read
// again.
func testWriteRecompilesItsApp(t *testing.T, s mds.Store) {
	a, b := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	aTask := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	wl := &mds.Whitelist{AppID: b.ID, Name: "testers", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EditWhitelist(ctx(), b.ID, wl.ID, []string{"u1"}, nil); err != nil {
		t.Fatal(err)
	}
	bTask := NewTask(t, MustCreatePackage(t, s, b, "2.0"), mds.Targeting{Whitelists: []int64{wl.ID}})
	if err := s.CreateTask(ctx(), bTask, "tester"); err != nil {
		t.Fatal(err)
	}
	for _, task := range []*mds.Task{aTask, bTask} {
		if _, err := apply(s, task, mds.ActionRelease); err != nil {
			t.Fatal(err)
		}
	}
	src := &RecordingLive{LiveStore: s}
	live := delivery.NewLive(src)
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	before := live.Current()
	aOffer, bOffer := OfferOf(t, before, a, "u1"), OfferOf(t, before, b, "u1")
	if aOffer == nil || bOffer == nil || src.WhitelistLoads() != 1 {
		t.Fatalf("before the write: offers %v and %v, %d whitelist loads; want both offers and one load", aOffer, bOffer, src.WhitelistLoads())
	}
	bOffer.Memo.Store("what the transport built")

	if _, err := s.UpdateTask(ctx(), a.ID, aTask.ID, "tester", func(t *mds.Task) (string, error) {
		t.Policy.(*mds.UpgradePolicy).Mode = mds.ModeForce
		return "edit", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	after := live.Current()
	if set := src.Last(); set.Full || !slices.Equal(set.Changed, []int64{a.ID}) || len(set.Apps) != 1 || len(set.Tasks) != 1 {
		t.Errorf("the write to shop loaded %+v; want shop alone", set)
	}
	if after.Revision != revision(t, s) || after.Offers() != 2 {
		t.Errorf("snapshot at revision %d with %d offers; want %d and 2", after.Revision, after.Offers(), revision(t, s))
	}
	if got := OfferOf(t, after, a, "u1"); got == nil || got == aOffer || got.Task.UpgradePolicy().Mode != mds.ModeForce {
		t.Errorf("shop's offer after its edit: %+v; want a new one in force mode", got)
	}
	if got := OfferOf(t, after, b, "u1"); got != bOffer || got.Memo.Load() != "what the transport built" {
		t.Errorf("blog's offer was recompiled by a write to shop")
	}
	if n := src.WhitelistLoads(); n != 1 {
		t.Errorf("blog's whitelist loaded %d times; a write to shop must not reload it", n)
	}

	// A write to blog's whitelist reloads blog, and shop stays.
	aOffer = OfferOf(t, after, a, "u1")
	if _, err := s.EditWhitelist(ctx(), b.ID, wl.ID, []string{"u2"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	if OfferOf(t, live.Current(), a, "u1") != aOffer || OfferOf(t, live.Current(), b, "u2") == nil || src.WhitelistLoads() != 2 {
		t.Errorf("after editing blog's whitelist: shop recompiled, or u2 not admitted, or %d whitelist loads (want 2)", src.WhitelistLoads())
	}
}

// testLiveServesBlobs: a node serves a blob while a live task of some app
// delivers it, and stops once none does, whichever app's write ends it.
func testLiveServesBlobs(t *testing.T, s mds.Store) {
	sum := fmt.Sprintf("%064x", 42)
	var tasks []*mds.Task
	for _, slug := range []string{"shop", "blog"} {
		a := MustCreateApp(t, s, slug)
		if err := s.AddBlob(ctx(), a.ID, mds.Blob{SHA256: sum, Size: 10}, "ci"); err != nil {
			t.Fatal(err)
		}
		p := &mds.Artifact{AppID: a.ID, Kind: mds.KindUpgrade, Platform: mds.Android, Version: "2.0",
			Spec: &mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sum, Size: 10}}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateArtifact(ctx(), p); err != nil {
			t.Fatal(err)
		}
		task := NewTask(t, p, mds.Targeting{})
		task.Status = mds.StatusLive
		if err := s.CreateTask(ctx(), task, "tester"); err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	live := delivery.NewLive(s)
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if !live.Serves(sum) {
			t.Fatalf("step %d: the blob of live tasks is not served", i)
		}
		if live.Serves(fmt.Sprintf("%064x", 43)) {
			t.Fatal("a blob no task delivers is served")
		}
		if _, err := apply(s, tasks[i], mds.ActionStop); err != nil {
			t.Fatal(err)
		}
		if err := live.Refresh(ctx()); err != nil {
			t.Fatal(err)
		}
		if live.Serves(sum) != want {
			t.Errorf("after stopping task %d of %d: served %v, want %v", i+1, len(tasks), !want, want)
		}
	}
}

// OfferOf is the offer an android 1.0 device user of app a gets from snap.
func OfferOf(t testing.TB, snap *delivery.Snapshot, a *mds.App, user string) *delivery.Offer {
	t.Helper()
	in := gray.NewInput(&mds.Device{AppKey: a.Key, Platform: mds.Android, AppVersion: "1.0", DeviceID: "d-" + user, UserID: user}, netip.Addr{}, time.Now())
	var dec delivery.Decision
	err := snap.Evaluate(&in, nil, &dec)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Upgrade.Offer == nil {
		return nil
	}
	return dec.Upgrade.Offer.Offer
}

// testLiveFollowsWrites: random writes of every sort over several apps,
// a few between refreshes, then from several writers at once while the
// node refreshes, leave a snapshot built change by change that answers
// every device as one built from everything does, by every key the apps
// ever had, and serves the same blobs. The change log is short, so that
// the node also falls behind its end and reads everything, from a
// snapshot built in parts.
func testLiveFollowsWrites(t *testing.T, s mds.Store) {
	const writers, steps = 4, 40
	cl, ok := s.(ChangeLogger)
	if !ok {
		t.Fatalf("%T cannot shorten its change log (storetest.ChangeLogger)", s)
	}
	cl.SetChangeLog(4)
	src := &RecordingLive{LiveStore: s}
	live := delivery.NewLive(src)
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	var worlds []*world
	for i := range writers {
		worlds = append(worlds, newWorld(t, s, i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 12 {
		for range 1 + r.IntN(6) {
			worlds[r.IntN(len(worlds))].step(t, r)
		}
		if err := live.Refresh(ctx()); err != nil {
			t.Fatal(err)
		}
		if !sameAsFresh(t, s, live, worlds) {
			t.Fatalf("after round %d", round)
		}
	}
	if full, partial := src.Loads(); full < 2 || partial < 2 {
		t.Fatalf("the rounds made %d full and %d partial loads; want both kinds, after the first", full, partial)
	}

	done := make(chan struct{})
	refreshed := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-done:
				refreshed <- err
				return
			default:
			}
			if e := live.Refresh(ctx()); e != nil && err == nil {
				err = e
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for i, w := range worlds {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for range steps {
				w.step(t, r)
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-refreshed; err != nil {
		t.Fatal(err)
	}
	if err := live.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	sameAsFresh(t, s, live, worlds)
}

// sameAsFresh reports whether live's snapshot is at the store's revision
// and answers the devices of worlds as a snapshot built from everything.
func sameAsFresh(t *testing.T, s mds.Store, live *delivery.Live, worlds []*world) bool {
	t.Helper()
	fresh := delivery.NewLive(s)
	if err := fresh.Refresh(ctx()); err != nil {
		t.Fatal(err)
	}
	got, want := describe(t, live, worlds), describe(t, fresh, worlds)
	if got != want {
		t.Errorf("the snapshot built change by change differs from one built from everything:\n%s\nwant:\n%s", got, want)
		return false
	}
	if live.Current().Revision != fresh.Current().Revision {
		t.Errorf("snapshot at revision %d, store at %d", live.Current().Revision, fresh.Current().Revision)
		return false
	}
	return true
}

// world is one app and the objects the random writer has made in it.
type world struct {
	s        mds.Store
	slug     string
	app      *mds.App
	keys     []string // every key the app has had, retired ones too
	packages []*mds.Artifact
	tasks    []*mds.Task
	list     *mds.Whitelist
	rules    *mds.RuleSet
	deleted  bool
}

// worldBlobs are the blobs worlds deliver, each shared by two apps.
var worldBlobs = []string{fmt.Sprintf("%064x", 100), fmt.Sprintf("%064x", 101), fmt.Sprintf("%064x", 102)}

// newWorld makes app i with four packages, two of them by URL and two of
// blobs, which another app delivers too.
func newWorld(t *testing.T, s mds.Store, i int) *world {
	slug := fmt.Sprintf("app-%d", i)
	w := &world{s: s, slug: slug, app: MustCreateApp(t, s, slug)}
	w.keys = []string{w.app.Key}
	for j := range 2 {
		w.packages = append(w.packages, MustCreatePackage(t, s, w.app, fmt.Sprintf("%d.0", 2+j)))
	}
	for j := range 2 {
		sum := worldBlobs[(i+j)%len(worldBlobs)]
		if err := s.AddBlob(ctx(), w.app.ID, mds.Blob{SHA256: sum, Size: 10}, "ci"); err != nil {
			t.Fatal(err)
		}
		p := &mds.Artifact{AppID: w.app.ID, Kind: mds.KindUpgrade, Platform: mds.Android, Version: fmt.Sprintf("%d.0", 4+j),
			Spec: &mds.UpgradeSpec{Build: 1, Source: mds.SourceBlob, SHA256: sum, Size: 10}}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateArtifact(ctx(), p); err != nil {
			t.Fatal(err)
		}
		w.packages = append(w.packages, p)
	}
	w.list = &mds.Whitelist{AppID: w.app.ID, Name: "testers", Kind: mds.WhitelistUsers}
	w.rules = &mds.RuleSet{AppID: w.app.ID, Name: "cities", Rules: []mds.Rule{{Field: mds.FieldCity, Operator: mds.OpIn, Values: []string{"c0"}}}}
	if err := s.CreateWhitelist(ctx(), w.list); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRuleSet(ctx(), w.rules); err != nil {
		t.Fatal(err)
	}
	return w
}

// step makes one random write. Writes the domain refuses (resuming a live
// task, say) are fine: they change nothing.
func (w *world) step(t *testing.T, r *rand.Rand) {
	if w.deleted {
		return
	}
	switch n := r.IntN(20); {
	case n < 6 || len(w.tasks) == 0:
		tg := mds.Targeting{}
		switch r.IntN(4) {
		case 1:
			tg.Whitelists = []int64{w.list.ID}
		case 2:
			tg.RuleSets = []int64{w.rules.ID}
		case 3:
			tg.Rollout = &mds.Rollout{Percent: 50, Stickiness: mds.StickyDevice}
		}
		task := NewTask(t, w.packages[r.IntN(len(w.packages))], tg)
		task.Status = mds.StatusLive
		task.Stage = mds.StageOfficial
		if tg.HasGates() {
			task.Stage = mds.StageGray
		}
		if err := w.s.CreateTask(ctx(), task, "tester"); err != nil {
			t.Error(err)
			return
		}
		w.tasks = append(w.tasks, task)
	case n < 12:
		actions := []mds.Action{mds.ActionPause, mds.ActionResume, mds.ActionStop, mds.ActionPromote}
		apply(w.s, w.tasks[r.IntN(len(w.tasks))], actions[r.IntN(len(actions))])
	case n < 15:
		user := fmt.Sprintf("u%d", r.IntN(4))
		if _, err := w.s.EditWhitelist(ctx(), w.app.ID, w.list.ID, []string{user}, nil); err != nil {
			t.Error(err)
		}
	case n < 17:
		w.rules.Rules[0].Values = []string{fmt.Sprintf("c%d", r.IntN(3))}
		if err := w.s.UpdateRuleSet(ctx(), w.rules); err != nil {
			t.Error(err)
		}
	case n < 19:
		a, err := w.s.UpdateApp(ctx(), w.app.ID, func(a *mds.App) error {
			a.PreviousKey, a.Key = a.Key, mds.NewAppKey()
			return nil
		})
		if err != nil {
			t.Error(err)
			return
		}
		w.app = a
		w.keys = append(w.keys, a.Key)
	default:
		for _, task := range w.tasks {
			apply(w.s, task, mds.ActionStop)
		}
		if err := w.s.DeleteApp(ctx(), w.app.ID); err != nil {
			t.Error(err)
			return
		}
		w.deleted = true
	}
}

// describe is what live's snapshot answers devices of worlds' apps, by
// every key each app ever had (deleted apps' too: they must be unknown),
// per device every live task's explanation, and which blobs it serves.
func describe(t testing.TB, live *delivery.Live, worlds []*world) string {
	t.Helper()
	snap := live.Current()
	var b strings.Builder
	fmt.Fprintf(&b, "%d offers\n", snap.Offers())
	for _, sum := range append(slices.Clone(worldBlobs), fmt.Sprintf("%064x", 99)) {
		fmt.Fprintf(&b, "serves %s: %v\n", sum[60:], live.Serves(sum))
	}
	for _, w := range worlds {
		a := w.app
		for _, key := range w.keys {
			for _, user := range []string{"u0", "u1", "u3"} {
				for _, city := range []string{"c0", "c2"} {
					d := &mds.Device{AppKey: key, Platform: mds.Android, AppVersion: "1.0", DeviceID: "d-" + user, UserID: user, City: city}
					in := gray.NewInput(d, netip.Addr{}, time.Unix(1_800_000_000, 0))
					ex, err := snap.Explain(&in, nil)
					fmt.Fprintf(&b, "%s %s %s: %v", a.Slug, user, city, err)
					for _, e := range ex {
						fmt.Fprintf(&b, " [task %d %s %s matched=%v chosen=%v]", e.TaskID, e.Version, e.Stage, e.Matched, e.Chosen)
					}
					b.WriteByte('\n')
				}
			}
		}
	}
	return b.String()
}
