package storetest

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

// NewOffline returns a valid offline package pkg of app at version v,
// signed by TestKeyID, with the blob of its file; neither is stored. The
// file's digest follows from the app, the package and the version.
func NewOffline(t testing.TB, app *mds.App, pkg, v string) (*mds.Artifact, mds.Blob) {
	t.Helper()
	sum := sha256.Sum256(fmt.Appendf(nil, "offline %d %s %s", app.ID, pkg, v))
	canonical := sha256.Sum256(fmt.Appendf(nil, "canonical %d %s %s", app.ID, pkg, v))
	blob := mds.Blob{SHA256: fmt.Sprintf("%x", sum), Size: 40_000}
	a := &mds.Artifact{AppID: app.ID, Kind: mds.KindOffline, Version: v, CreatedBy: "test",
		Spec: &mds.OfflineSpec{Package: pkg, Type: mds.OfflineNormal, Host: "https://" + pkg + ".shop.example", Entry: "/index.html",
			Fallback: "https://cdn.shop.example/" + pkg + "/", Notes: "New checkout.", KeyID: TestKeyID,
			SignedAt: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Files: 12, FilesSize: 90_000, SHA256: blob.SHA256, Size: blob.Size,
			CanonicalSHA256: fmt.Sprintf("%x", canonical), CanonicalSize: 91_000}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a, blob
}

// MustCreateOffline registers TestKeyID with app (once) and stores
// NewOffline of it, its file uploaded with it.
func MustCreateOffline(t testing.TB, s mds.Store, app *mds.App, pkg, v string) *mds.Artifact {
	t.Helper()
	MustAddTeamKey(t, s, app, TestKeyID)
	a, blob := NewOffline(t, app, pkg, v)
	if err := s.CreateArtifact(ctx(), a, blob); err != nil {
		t.Fatal(err)
	}
	return a
}

// MustReleaseOffline creates a live official task delivering offline
// package a.
func MustReleaseOffline(t testing.TB, s mds.Store, a *mds.Artifact) *mds.Task {
	t.Helper()
	task := &mds.Task{AppID: a.AppID, Kind: mds.KindOffline, ArtifactID: a.ID, Policy: &mds.OfflinePolicy{}, Status: mds.StatusLive}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTask(ctx(), task, "test"); err != nil {
		t.Fatal(err)
	}
	return task
}

// deltaPairs lists the deltas of app's package pkg as "from→to" versions
// with their status.
func deltaPairs(t testing.TB, s mds.Store, app *mds.App, pkg string) []string {
	t.Helper()
	list, err := s.ListDeltas(ctx(), app.ID, pkg)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range list {
		out = append(out, d.FromVersion+"→"+d.ToVersion+" "+string(d.Status))
	}
	return out
}

// testOffline: an offline package's version is above every version its
// package ever had in the app, deleted ones included; its team key is
// the app's and active; CheckArtifact says what CreateArtifact would,
// writing nothing; packages of different IDs, or apps, do not meet.
func testOffline(t *testing.T, s mds.Store) {
	shop, blog := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	first, blob := NewOffline(t, shop, "home", "1.2.0")
	err := s.CreateArtifact(ctx(), first, blob)
	wantCode(t, err, mds.EINVALID)
	wantMessage(t, err, TestKeyID, "mds keys add")
	_, err = s.FindBlob(ctx(), shop.ID, blob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)
	MustAddTeamKey(t, s, shop, TestKeyID)
	if err := s.CreateArtifact(ctx(), first, blob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindArtifact(ctx(), shop.ID, first.ID); err != nil || !reflect.DeepEqual(got, first) {
		t.Errorf("offline package did not round-trip: %+v, %v\nwant %+v", got, err, first)
	}
	create := func(app *mds.App, pkg, v string) error {
		t.Helper()
		MustAddTeamKey(t, s, app, TestKeyID)
		a, blob := NewOffline(t, app, pkg, v)
		before := revision(t, s)
		checked := s.CheckArtifact(ctx(), a)
		if revision(t, s) != before {
			t.Errorf("CheckArtifact moved the revision")
		}
		err := s.CreateArtifact(ctx(), a, blob)
		if mds.ErrorCode(checked) != mds.ErrorCode(err) || mds.ErrorMessage(checked) != mds.ErrorMessage(err) {
			t.Errorf("CheckArtifact said %v, CreateArtifact %v", checked, err)
		}
		return err
	}
	for _, v := range []string{"1.2.0", "1.1.9", "1.2"} { // 1.2 is 1.2.0 to devices
		err := create(shop, "home", v)
		wantCode(t, err, mds.ECONFLICT)
		wantMessage(t, err, "home", "1.2.0")
	}
	for _, c := range []struct {
		app      *mds.App
		pkg, ver string
	}{{shop, "home", "1.10.0"}, {shop, "cart", "1.0.0"}, {blog, "home", "1.0.0"}} {
		if err := create(c.app, c.pkg, c.ver); err != nil {
			t.Errorf("%s %s %s: %v", c.app.Slug, c.pkg, c.ver, err)
		}
	}
	// A deleted version stays taken.
	list, _ := s.ListArtifacts(ctx(), shop.ID, mds.KindOffline, mds.Page{})
	if len(list) != 3 {
		t.Fatalf("shop has %d offline packages, want 3", len(list))
	}
	if err := s.DeleteArtifact(ctx(), shop.ID, list[1].ID); err != nil { // home 1.10.0
		t.Fatal(err)
	}
	wantCode(t, create(shop, "home", "1.10.0"), mds.ECONFLICT)
	if err := create(shop, "home", "1.11.0"); err != nil {
		t.Error(err)
	}
	// A version that differs from one of the package's only in case, a
	// host another package serves.
	wantCode(t, create(shop, "home", "1.11.0-RC1"), mds.ECONFLICT) // not above 1.11.0
	if err := create(shop, "home", "1.12.0-rc1"); err != nil {
		t.Fatal(err)
	}
	err = create(shop, "home", "1.12.0-RC1")
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "only in case")
	clash, blob := NewOffline(t, shop, "promo", "1.0.0")
	clash.Spec.(*mds.OfflineSpec).Host = "https://home.shop.example"
	err = s.CreateArtifact(ctx(), clash, blob)
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "served by offline package home")
	// A retired key signs nothing more.
	if _, err := s.RetireTeamKey(ctx(), shop.ID, TestKeyID, "test"); err != nil {
		t.Fatal(err)
	}
	err = create(shop, "home", "2.0.0")
	wantCode(t, err, mds.EINVALID)
	wantMessage(t, err, "retired")
}

// testOfflineRace: of uploads racing with one version of a package,
// exactly one is stored, and the others leave no record of their files.
func testOfflineRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustAddTeamKey(t, s, a, TestKeyID)
	const n = 8
	errs := make([]error, n)
	blobs := make([]mds.Blob, n)
	var wg sync.WaitGroup
	for i := range n {
		op, _ := NewOffline(t, a, "home", "3.0.0")
		p := op.Spec.(*mds.OfflineSpec)
		p.SHA256 = fmt.Sprintf("%064x", 0xf00+i)
		if err := op.Validate(); err != nil {
			t.Fatal(err)
		}
		blobs[i] = mds.Blob{SHA256: p.SHA256, Size: p.Size}
		wg.Go(func() { errs[i] = s.CreateArtifact(ctx(), op, blobs[i]) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		_, found := s.FindBlob(ctx(), a.ID, blobs[i].SHA256)
		switch mds.ErrorCode(err) {
		case "":
			ok++
			if found != nil {
				t.Errorf("the winner's file is not recorded: %v", found)
			}
		case mds.ECONFLICT:
			wantCode(t, found, mds.ENOTFOUND)
		default:
			t.Errorf("racing uploads: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d racing uploads of one version succeeded; want exactly 1", ok, n)
	}
}

// testDeltaQueue: releasing a version queues deltas to it from the newest
// DefaultDeltaBases versions of its package released before it and older
// than it, once; releasing it again (resume, a second task) queues
// nothing more.
func testDeltaQueue(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	var versions []*mds.Artifact
	for i := range 8 {
		versions = append(versions, MustCreateOffline(t, s, a, "home", fmt.Sprintf("1.%d.0", i)))
	}
	other := MustCreateOffline(t, s, a, "cart", "1.0.0")
	MustReleaseOffline(t, s, other)
	MustReleaseOffline(t, s, versions[0])
	if got := deltaPairs(t, s, a, ""); len(got) != 0 {
		t.Errorf("the first release of a package queued %v", got)
	}
	// Version 3 is never released: no delta is from it.
	for _, i := range []int{1, 2, 4, 5, 6} {
		MustReleaseOffline(t, s, versions[i])
	}
	want := []string{"1.5.0→1.6.0 pending", "1.4.0→1.6.0 pending", "1.2.0→1.6.0 pending", "1.1.0→1.6.0 pending", "1.0.0→1.6.0 pending"}
	if got := deltaPairs(t, s, a, "home"); !slices.Equal(got[:5], want) {
		t.Errorf("deltas to 1.6.0: %v, want %v", got[:5], want)
	}
	// A release of version 7 queues from the newest five before it.
	task := MustReleaseOffline(t, s, versions[7])
	got := deltaPairs(t, s, a, "home")
	want = []string{"1.6.0→1.7.0 pending", "1.5.0→1.7.0 pending", "1.4.0→1.7.0 pending", "1.2.0→1.7.0 pending", "1.1.0→1.7.0 pending"}
	if !slices.Equal(got[:5], want) {
		t.Errorf("deltas to 1.7.0: %v, want %v", got[:5], want)
	}
	// Pausing and resuming it, or a second task of it, queues nothing.
	for _, action := range []mds.Action{mds.ActionPause, mds.ActionResume} {
		if _, err := s.UpdateTask(ctx(), a.ID, task.ID, "test", func(t *mds.Task) (string, error) { return string(action), t.Apply(action) }); err != nil {
			t.Fatal(err)
		}
	}
	MustReleaseOffline(t, s, versions[7])
	if again := deltaPairs(t, s, a, "home"); !slices.Equal(again, got) {
		t.Errorf("releasing 1.7.0 again changed its deltas: %v, was %v", again, got)
	}
	// Releasing an older version after a newer one takes deltas from
	// older ones only.
	MustReleaseOffline(t, s, versions[3])
	list, err := s.ListDeltas(ctx(), a.ID, "home")
	if err != nil {
		t.Fatal(err)
	}
	var to3 []string
	for _, d := range list {
		if d.To == versions[3].ID {
			to3 = append(to3, d.FromVersion)
		}
		if d.From == versions[3].ID {
			t.Errorf("a delta from 1.3.0, released after %s: %v", d.ToVersion, d)
		}
	}
	if !slices.Equal(to3, []string{"1.2.0", "1.1.0", "1.0.0"}) {
		t.Errorf("deltas to 1.3.0 from %v, want 1.2.0, 1.1.0, 1.0.0", to3)
	}
	if got := deltaPairs(t, s, a, "cart"); len(got) != 0 {
		t.Errorf("another package's release queued deltas of cart: %v", got)
	}
}

// testDeltaBuild: a builder claims the oldest pending delta with a lease;
// finishing it ready records its file as the app's, moves the app's
// revision and puts it in the live set; a claim whose lease ran out goes
// to the next builder, and the first one's finish is refused; skipped
// and failed deltas are not offered; deleting a version deletes its
// deltas, and the app deletes with them.
func testDeltaBuild(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	v1, v2, v3 := MustCreateOffline(t, s, a, "home", "1.0.0"), MustCreateOffline(t, s, a, "home", "2.0.0"), MustCreateOffline(t, s, a, "home", "3.0.0")
	if d, err := s.ClaimDelta(ctx(), time.Minute); err != nil || d != nil {
		t.Fatalf("claimed %v, %v with nothing queued", d, err)
	}
	MustReleaseOffline(t, s, v1)
	MustReleaseOffline(t, s, v2)
	MustReleaseOffline(t, s, v3)
	first, err := s.ClaimDelta(ctx(), time.Minute)
	if err != nil || first == nil || first.From != v1.ID || first.To != v2.ID || first.Status != mds.DeltaBuilding || first.Attempts != 1 {
		t.Fatalf("first claim: %+v, %v; want 1.0.0→2.0.0 building, attempt 1", first, err)
	}
	if first.AppID != a.ID || first.Package != "home" || first.FromVersion != "1.0.0" || first.ToVersion != "2.0.0" {
		t.Errorf("the claimed delta says %+v", first)
	}
	second, err := s.ClaimDelta(ctx(), -time.Second) // a builder that dies: its lease runs out at once
	if err != nil || second == nil || second.To != v3.ID {
		t.Fatalf("second claim: %+v, %v; want a delta to 3.0.0", second, err)
	}

	rev := revision(t, s)
	blob := mds.Blob{SHA256: fmt.Sprintf("%064x", 0xde17a), Size: 3000}
	first.Status, first.BuildMillis = mds.DeltaReady, 250
	if err := s.FinishDelta(ctx(), first, &blob); err != nil {
		t.Fatal(err)
	}
	if b, err := s.FindBlob(ctx(), a.ID, blob.SHA256); err != nil || b.Size != blob.Size {
		t.Errorf("the delta's file: %+v, %v; want it recorded as the app's", b, err)
	}
	if app, err := s.FindApp(ctx(), a.Slug); err != nil || revision(t, s) <= rev || app.Revision != revision(t, s) {
		t.Errorf("a ready delta left the app's revision at %d (store %d, was %d)", app.Revision, revision(t, s), rev)
	}
	set, err := s.LoadLive(ctx(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Deltas) != 1 || set.Deltas[0].From != v1.ID || set.Deltas[0].SHA256 != blob.SHA256 || set.Deltas[0].Size != 3000 {
		t.Errorf("live deltas %+v, want the ready one", set.Deltas)
	}
	// Finishing it again is refused: it is no longer building.
	wantCode(t, s.FinishDelta(ctx(), first, &blob), mds.ECONFLICT)

	// The second builder's lease runs out: the next claim takes its delta,
	// and the late finish is refused.
	if err := s.FinishDelta(ctx(), &mds.Delta{AppID: a.ID, From: second.From, To: second.To, Status: mds.DeltaSkipped, Lease: second.Lease.Add(time.Second)}, nil); mds.ErrorCode(err) != mds.ECONFLICT {
		t.Errorf("finishing with another's lease: %v, want a conflict", err)
	}
	rest := map[int64]bool{}
	for {
		d, err := s.ClaimDelta(ctx(), -time.Second) // expired at once
		if err != nil {
			t.Fatal(err)
		}
		if d == nil || rest[d.From] {
			break
		}
		rest[d.From] = true
		if d.From == second.From {
			if d.Attempts != 2 {
				t.Errorf("the reclaimed delta is on attempt %d, want 2", d.Attempts)
			}
			late := *second
			late.Status = mds.DeltaFailed
			wantCode(t, s.FinishDelta(ctx(), &late, nil), mds.ECONFLICT)
			d.Status, d.Reason, d.Size = mds.DeltaSkipped, "not smaller than the full package", 39_000
			if err := s.FinishDelta(ctx(), d, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(rest) != 2 {
		t.Errorf("reclaimed %d deltas to 3.0.0, want both", len(rest))
	}
	got := deltaPairs(t, s, a, "home")
	if !slices.Contains(got, "1.0.0→2.0.0 ready") || !slices.ContainsFunc(got, func(p string) bool { return p == "2.0.0→3.0.0 skipped" || p == "1.0.0→3.0.0 skipped" }) {
		t.Errorf("deltas now %v", got)
	}
	list, _ := s.ListDeltas(ctx(), a.ID, "home")
	for _, d := range list {
		if d.Status == mds.DeltaSkipped && (d.Reason == "" || d.Size != 39_000 || d.SHA256 != "") {
			t.Errorf("a skipped delta keeps its reason and size, and no file: %+v", d)
		}
	}
	if set, _ := s.LoadLive(ctx(), 0); len(set.Deltas) != 1 {
		t.Errorf("live deltas %v; skipped and building ones are not offered", set.Deltas)
	}

	// Deleting a version deletes the deltas from and to it.
	stopAll(t, s, a)
	if err := s.DeleteArtifact(ctx(), a.ID, v1.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range deltaPairs(t, s, a, "home") {
		if p[:5] == "1.0.0" {
			t.Errorf("delta %s outlived its base", p)
		}
	}
	if err := s.DeleteApp(ctx(), a.ID); err != nil {
		t.Fatalf("deleting an app with deltas: %v", err)
	}
}

// stopAll stops and deletes every task of app.
func stopAll(t testing.TB, s mds.Store, a *mds.App) {
	t.Helper()
	tasks, err := s.ListTasks(ctx(), a.ID, "", mds.Page{Limit: mds.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if !task.Status.Finished() {
			if _, err := s.UpdateTask(ctx(), a.ID, task.ID, "test", func(t *mds.Task) (string, error) { return "stop", t.Apply(mds.ActionStop) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteTask(ctx(), a.ID, task.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// testDeltaClaimRace: builders racing, as on many nodes, each claim
// other deltas, and every delta is claimed once.
func testDeltaClaimRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	for i := range 7 {
		MustReleaseOffline(t, s, MustCreateOffline(t, s, a, "home", fmt.Sprintf("%d.0.0", i+1)))
	}
	queued := len(deltaPairs(t, s, a, "home"))
	const builders = 6
	var mu sync.Mutex
	claimed := map[[2]int64]int{}
	var wg sync.WaitGroup
	for range builders {
		wg.Go(func() {
			for {
				d, err := s.ClaimDelta(ctx(), time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if d == nil {
					return
				}
				mu.Lock()
				claimed[[2]int64{d.From, d.To}]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != queued {
		t.Errorf("%d of %d deltas claimed", len(claimed), queued)
	}
	for k, n := range claimed {
		if n != 1 {
			t.Errorf("delta %v claimed %d times", k, n)
		}
	}
}

// testOfflinePackageCap: an app may have at most mds.MaxOfflineHeld
// offline packages over its life, deleted ones included: what a device
// may come to hold. New versions of those it has are taken.
func testOfflinePackageCap(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	var last *mds.Artifact
	for i := range mds.MaxOfflineHeld {
		last = MustCreateOffline(t, s, a, fmt.Sprintf("p%03d", i), "1.0.0")
	}
	if err := s.DeleteArtifact(ctx(), a.ID, last.ID); err != nil {
		t.Fatal(err)
	}
	extra, blob := NewOffline(t, a, "one-too-many", "1.0.0")
	err := s.CreateArtifact(ctx(), extra, blob)
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "the most a device may hold")
	MustCreateOffline(t, s, a, "p000", "1.1.0")
}

// testOfflineReleaseRace: tasks releasing one version at once, on any
// nodes, all succeed, and its deltas are queued once.
func testOfflineReleaseRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustReleaseOffline(t, s, MustCreateOffline(t, s, a, "home", "1.0.0"))
	for round := range 5 {
		v := MustCreateOffline(t, s, a, "home", fmt.Sprintf("2.%d.0", round))
		const n = 4
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			task := &mds.Task{AppID: a.ID, Kind: mds.KindOffline, ArtifactID: v.ID, Policy: &mds.OfflinePolicy{}, Status: mds.StatusLive}
			if err := task.Validate(); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() { errs[i] = s.CreateTask(ctx(), task, "test") })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: racing releases: %v", round, err)
			}
		}
		list, err := s.ListDeltas(ctx(), a.ID, "home")
		if err != nil {
			t.Fatal(err)
		}
		to := 0
		for _, d := range list {
			if d.To == v.ID {
				to++
			}
		}
		if to != min(round+1, mds.DefaultDeltaBases) {
			t.Errorf("round %d: %d deltas to %s, want %d", round, to, v.Version, min(round+1, mds.DefaultDeltaBases))
		}
	}
}

// testDeltaRetry: a delta finished pending waits until its retry time
// before a builder may claim it again.
func testDeltaRetry(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustReleaseOffline(t, s, MustCreateOffline(t, s, a, "home", "1.0.0"))
	MustReleaseOffline(t, s, MustCreateOffline(t, s, a, "home", "1.1.0"))
	d, err := s.ClaimDelta(ctx(), time.Minute)
	if err != nil || d == nil {
		t.Fatalf("claim: %v, %v", d, err)
	}
	d.Status, d.Reason, d.RetryAt = mds.DeltaPending, "the blob store did not answer", time.Now().Add(time.Hour)
	if err := s.FinishDelta(ctx(), d, nil); err != nil {
		t.Fatal(err)
	}
	if again, err := s.ClaimDelta(ctx(), time.Minute); err != nil || again != nil {
		t.Fatalf("claimed %+v, %v before its retry time", again, err)
	}
	if got := deltaPairs(t, s, a, "home"); len(got) != 1 || got[0] != "1.0.0→1.1.0 pending" {
		t.Errorf("deltas %v", got)
	}
}
