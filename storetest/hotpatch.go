package storetest

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
)

// Hotpatches in the store: team keys, the checks a hotpatch passes as it
// is stored, rolled-back tasks, and the app revision that versions what
// devices are told.

// TestKeyID is the team key MustCreateHotpatch signs with. Any 64 hex
// digits do: the store keeps key IDs and does not check signatures.
const TestKeyID = "5e" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"

// testKeyPEM stands for a public key; the store keeps it as it is given.
const testKeyPEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"

// MustAddTeamKey registers key id with app, unless the app has it already
// (retired or not), and returns the app's key.
func MustAddTeamKey(t testing.TB, s mds.Store, app *mds.App, id string) *mds.TeamKey {
	t.Helper()
	if k, err := s.FindTeamKey(ctx(), app.ID, id); err == nil {
		return k
	} else if mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Fatal(err)
	}
	k := &mds.TeamKey{AppID: app.ID, ID: id, Alg: "ed25519", PEM: testKeyPEM, Name: "key " + id[:8], CreatedBy: "test"}
	if err := s.AddTeamKey(ctx(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// NewHotpatch returns a valid android hotpatch of app with patch version
// patch, patching appVersions (2.1.0 when none) and signed by TestKeyID,
// with the blob of its file; neither is stored. The file's digest follows
// from the app, the patch version and the app versions.
func NewHotpatch(t testing.TB, app *mds.App, patch int64, appVersions ...string) (*mds.Artifact, mds.Blob) {
	t.Helper()
	if len(appVersions) == 0 {
		appVersions = []string{"2.1.0"}
	}
	var targets []mds.HotpatchTarget
	for _, v := range appVersions {
		targets = append(targets, mds.HotpatchTarget{AppVersion: v})
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "hotpatch %d %d %v", app.ID, patch, appVersions))
	blob := mds.Blob{SHA256: fmt.Sprintf("%x", sum), Size: 4096}
	a := &mds.Artifact{AppID: app.ID, Kind: mds.KindHotpatch, Platform: mds.Android, Version: fmt.Sprint(patch), CreatedBy: "test",
		Spec: &mds.HotpatchSpec{PatchVersion: patch, Targets: targets, Notes: "Fixes the crash at checkout.", KeyID: TestKeyID,
			SignedAt: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Files: 2, FilesSize: 8000, SHA256: blob.SHA256, Size: blob.Size}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a, blob
}

// MustCreateHotpatch registers TestKeyID with app (once) and stores
// NewHotpatch of it, its file uploaded with it.
func MustCreateHotpatch(t testing.TB, s mds.Store, app *mds.App, patch int64, appVersions ...string) *mds.Artifact {
	t.Helper()
	MustAddTeamKey(t, s, app, TestKeyID)
	a, blob := NewHotpatch(t, app, patch, appVersions...)
	if err := s.CreateArtifact(ctx(), a, blob); err != nil {
		t.Fatal(err)
	}
	return a
}

// NewHotpatchTask returns a valid draft task delivering hotpatch a, not
// stored.
func NewHotpatchTask(t testing.TB, a *mds.Artifact, tg mds.Targeting) *mds.Task {
	t.Helper()
	task := &mds.Task{AppID: a.AppID, Kind: mds.KindHotpatch, ArtifactID: a.ID, Policy: &mds.HotpatchPolicy{}, Status: mds.StatusDraft, Targeting: tg}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	return task
}

// wantMessage fails unless err's message holds every one of parts.
func wantMessage(t testing.TB, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("error %v does not say %q", err, p)
		}
	}
}

// testAppRevision: every write that moves the store's revision makes it
// the revision of the app it wrote, and of no other; a write that leaves
// the revision alone (team keys, artifacts, blobs) leaves every app's
// alone too.
func testAppRevision(t *testing.T, s mds.Store) {
	shop := MustCreateApp(t, s, "shop")
	if rev := revision(t, s); shop.Revision != rev {
		t.Errorf("CreateApp set Revision %d; the store is at %d", shop.Revision, rev)
	}
	blog := MustCreateApp(t, s, "blog")
	revs := func() map[string]int64 {
		t.Helper()
		apps, err := s.ListApps(ctx(), mds.Page{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int64{}
		for _, a := range apps {
			m[a.Slug] = a.Revision
		}
		set, err := s.LoadLive(ctx(), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range set.Apps {
			if m[a.Slug] != a.Revision {
				t.Errorf("LoadLive reads app %s at revision %d, ListApps at %d", a.Slug, a.Revision, m[a.Slug])
			}
		}
		return m
	}
	var task *mds.Task
	var wl *mds.Whitelist
	rs := &mds.RuleSet{AppID: blog.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	steps := []struct {
		what  string
		moves string // the slug of the app whose revision the write moves; "" for none
		write func() error
	}{
		{"UpdateApp", "shop", func() error {
			_, err := s.UpdateApp(ctx(), shop.ID, func(a *mds.App) error { a.Name = "Shop"; return nil })
			return err
		}},
		{"AddBlob", "", func() error {
			return s.AddBlob(ctx(), shop.ID, mds.Blob{SHA256: strings.Repeat("7", 64), Size: 1}, "ci")
		}},
		{"AddTeamKey", "", func() error { MustAddTeamKey(t, s, shop, TestKeyID); return nil }},
		{"CreateArtifact", "", func() error { MustCreateHotpatch(t, s, shop, 1); return nil }},
		{"CreateTask", "shop", func() error {
			task = MustCreateTask(t, s, MustCreatePackage(t, s, shop, "2.0"))
			return nil
		}},
		{"UpdateTask", "shop", func() error { _, err := apply(s, task, mds.ActionRelease); return err }},
		{"CreateWhitelist", "", func() error {
			wl = &mds.Whitelist{AppID: blog.ID, Name: "w", Kind: mds.WhitelistUsers}
			return s.CreateWhitelist(ctx(), wl)
		}},
		{"ReplaceWhitelist", "blog", func() error { _, err := s.ReplaceWhitelist(ctx(), blog.ID, wl.ID, entries("alice")); return err }},
		{"CreateRuleSet", "", func() error { return s.CreateRuleSet(ctx(), rs) }},
		{"UpdateRuleSet", "blog", func() error { rs.Name = "r2"; return s.UpdateRuleSet(ctx(), rs) }},
		{"RetireTeamKey", "", func() error { _, err := s.RetireTeamKey(ctx(), shop.ID, TestKeyID, "ci"); return err }},
		{"DeleteApp", "blog", func() error { return s.DeleteApp(ctx(), blog.ID) }},
	}
	for _, step := range steps {
		before, rev := revs(), revision(t, s)
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		after, now := revs(), revision(t, s)
		if moved := now > rev; moved != (step.moves != "") {
			t.Errorf("%s moved the revision: %v; want %v", step.what, moved, step.moves != "")
		}
		for slug, r := range before {
			want := r
			if slug == step.moves {
				want = now
			}
			if got, ok := after[slug]; ok && got != want {
				t.Errorf("after %s app %s is at revision %d; want %d (it was at %d, the store is at %d)", step.what, slug, got, want, r, now)
			}
		}
	}
	got, err := s.UpdateApp(ctx(), shop.ID, func(a *mds.App) error { a.Name = "The Shop"; return nil })
	if err != nil || got.Revision != revision(t, s) {
		t.Errorf("UpdateApp returned %+v, %v; want it at the store's revision %d", got, err, revision(t, s))
	}
}

func testTeamKeys(t *testing.T, s mds.Store) {
	shop, blog := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	rev := revision(t, s)
	older := &mds.TeamKey{AppID: shop.ID, ID: strings.Repeat("b", 64), Alg: "ed25519", PEM: testKeyPEM, Name: "release 2026", CreatedBy: "alice"}
	if err := s.AddTeamKey(ctx(), older); err != nil {
		t.Fatal(err)
	}
	if older.CreatedAt.IsZero() || !older.Active() {
		t.Errorf("AddTeamKey left %+v; want CreatedAt set and the key active", older)
	}
	got, err := s.FindTeamKey(ctx(), shop.ID, older.ID)
	if err != nil || !reflect.DeepEqual(got, older) {
		t.Errorf("FindTeamKey = %+v, %v; want %+v", got, err, older)
	}
	time.Sleep(2 * time.Millisecond) // times are kept to the millisecond
	newer := &mds.TeamKey{AppID: shop.ID, ID: strings.Repeat("a", 64), Alg: "ecdsa-p256", PEM: testKeyPEM, Name: "release 2027", CreatedBy: "alice"}
	if err := s.AddTeamKey(ctx(), newer); err != nil {
		t.Fatal(err)
	}
	if list, err := s.ListTeamKeys(ctx(), shop.ID); err != nil || len(list) != 2 || list[0].ID != older.ID || list[1].ID != newer.ID {
		t.Errorf("ListTeamKeys = %v, %v; want the older key first", list, err)
	}
	err = s.AddTeamKey(ctx(), &mds.TeamKey{AppID: shop.ID, ID: older.ID, Alg: "ed25519", PEM: testKeyPEM, Name: "again", CreatedBy: "bob"})
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, older.ID, "already registered")
	err = s.AddTeamKey(ctx(), &mds.TeamKey{AppID: 9999, ID: older.ID, Alg: "ed25519", PEM: testKeyPEM, Name: "x", CreatedBy: "bob"})
	wantCode(t, err, mds.ENOTFOUND)

	// Keys are the app's: another app neither sees nor retires them, and
	// may register the same key for itself.
	_, err = s.FindTeamKey(ctx(), blog.ID, older.ID)
	wantCode(t, err, mds.ENOTFOUND)
	wantMessage(t, err, "key "+older.ID+" is not registered with this app")
	_, err = s.RetireTeamKey(ctx(), blog.ID, older.ID, "mallory")
	wantCode(t, err, mds.ENOTFOUND)
	if list, err := s.ListTeamKeys(ctx(), blog.ID); err != nil || len(list) != 0 {
		t.Errorf("ListTeamKeys of another app = %v, %v; want none", list, err)
	}
	blogs := MustAddTeamKey(t, s, blog, older.ID)

	retired, err := s.RetireTeamKey(ctx(), shop.ID, older.ID, "bob")
	if err != nil || retired.Active() || retired.RetiredBy != "bob" || retired.RetiredAt.Before(older.CreatedAt) || retired.Name != older.Name {
		t.Fatalf("RetireTeamKey = %+v, %v", retired, err)
	}
	if got, err := s.FindTeamKey(ctx(), shop.ID, older.ID); err != nil || !reflect.DeepEqual(got, retired) {
		t.Errorf("FindTeamKey of the retired key = %+v, %v; want %+v", got, err, retired)
	}
	_, err = s.RetireTeamKey(ctx(), shop.ID, older.ID, "bob")
	wantCode(t, err, mds.ECONFLICT)
	_, err = s.RetireTeamKey(ctx(), shop.ID, strings.Repeat("c", 64), "bob")
	wantCode(t, err, mds.ENOTFOUND)
	err = s.AddTeamKey(ctx(), &mds.TeamKey{AppID: shop.ID, ID: older.ID, Alg: "ed25519", PEM: testKeyPEM, Name: "back", CreatedBy: "bob"})
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, older.ID, "retired", "cannot come back")
	if list, err := s.ListTeamKeys(ctx(), shop.ID); err != nil || len(list) != 2 || list[0].Active() || !list[1].Active() {
		t.Errorf("ListTeamKeys after retiring = %v, %v; want the retired key listed", list, err)
	}
	if got, err := s.FindTeamKey(ctx(), blog.ID, older.ID); err != nil || !reflect.DeepEqual(got, blogs) {
		t.Errorf("retiring shop's key changed blog's: %+v, %v", got, err)
	}
	if revision(t, s) != rev {
		t.Error("team key writes moved the revision; devices are told nothing of keys")
	}
}

// testTeamKeyCap: an app registers at most MaxTeamKeys keys, retired ones
// included, exactly so when adds race.
func testTeamKeyCap(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	key := func(i int) string { return fmt.Sprintf("%064x", i+1) }
	const racing = 8
	for i := range mds.MaxTeamKeys - 2 {
		MustAddTeamKey(t, s, a, key(i))
	}
	if _, err := s.RetireTeamKey(ctx(), a.ID, key(0), "ci"); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, racing)
	var wg sync.WaitGroup
	for i := range racing {
		wg.Go(func() {
			errs[i] = s.AddTeamKey(ctx(), &mds.TeamKey{AppID: a.ID, ID: key(1000 + i), Alg: "ed25519", PEM: testKeyPEM, Name: "k", CreatedBy: "ci"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch mds.ErrorCode(err) {
		case "":
			ok++
		case mds.ECONFLICT:
			wantMessage(t, err, fmt.Sprint(mds.MaxTeamKeys))
		default:
			t.Errorf("racing adds at the cap: %v", err)
		}
	}
	if list, _ := s.ListTeamKeys(ctx(), a.ID); ok != 2 || len(list) != mds.MaxTeamKeys {
		t.Errorf("%d of %d racing adds at %d keys succeeded, leaving %d keys; want 2 and %d", ok, racing, mds.MaxTeamKeys-2, len(list), mds.MaxTeamKeys)
	}
}

// testTeamKeyRace: of many adds of one key, exactly one registers it.
func testTeamKeyRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.AddTeamKey(ctx(), &mds.TeamKey{AppID: a.ID, ID: TestKeyID, Alg: "ed25519", PEM: testKeyPEM, Name: fmt.Sprint("k", i), CreatedBy: "ci"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch mds.ErrorCode(err) {
		case "":
			ok++
		case mds.ECONFLICT:
		default:
			t.Errorf("racing adds of one key: %v", err)
		}
	}
	if list, _ := s.ListTeamKeys(ctx(), a.ID); ok != 1 || len(list) != 1 {
		t.Errorf("%d of %d racing adds of one key succeeded, leaving %d keys; want exactly 1", ok, n, len(list))
	}
}

// testHotpatches: a hotpatch is stored only when signed by an active key
// of its app and above every patch version the app used, deleted
// hotpatches included, for each app version it patches on its platform;
// a hotpatch refused leaves no record of the file uploaded with it.
func testHotpatches(t *testing.T, s mds.Store) {
	shop, blog := MustCreateApp(t, s, "shop"), MustCreateApp(t, s, "blog")
	rev := revision(t, s)
	first, blob := NewHotpatch(t, shop, 3, "2.1.0")
	err := s.CreateArtifact(ctx(), first, blob)
	wantCode(t, err, mds.EINVALID)
	wantMessage(t, err, TestKeyID, "mds keys add")
	_, err = s.FindBlob(ctx(), shop.ID, blob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)
	MustAddTeamKey(t, s, blog, TestKeyID) // another app's key is no key of shop's
	wantCode(t, s.CreateArtifact(ctx(), first, blob), mds.EINVALID)
	MustAddTeamKey(t, s, shop, TestKeyID)
	if err := s.CreateArtifact(ctx(), first, blob); err != nil {
		t.Fatal(err)
	}
	if got, err := s.FindArtifact(ctx(), shop.ID, first.ID); err != nil || !reflect.DeepEqual(got, first) {
		t.Errorf("hotpatch did not round-trip: %+v, %v\nwant %+v", got, err, first)
	}
	if b, err := s.FindBlob(ctx(), shop.ID, blob.SHA256); err != nil || b.Size != blob.Size {
		t.Errorf("the file uploaded with the hotpatch: %+v, %v; want it recorded as the app's", b, err)
	}
	_, err = s.FindBlob(ctx(), blog.ID, blob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)

	// CheckArtifact, which writes nothing, says what CreateArtifact does.
	create := func(patch int64, versions ...string) error {
		t.Helper()
		a, blob := NewHotpatch(t, shop, patch, versions...)
		before := revision(t, s)
		_, had := s.FindBlob(ctx(), shop.ID, blob.SHA256)
		checked := s.CheckArtifact(ctx(), a)
		if _, has := s.FindBlob(ctx(), shop.ID, blob.SHA256); (has == nil) != (had == nil) || revision(t, s) != before {
			t.Errorf("CheckArtifact wrote: blob %v, revision %d → %d", has, before, revision(t, s))
		}
		err := s.CreateArtifact(ctx(), a, blob)
		if mds.ErrorCode(checked) != mds.ErrorCode(err) || mds.ErrorMessage(checked) != mds.ErrorMessage(err) {
			t.Errorf("CheckArtifact said %v, CreateArtifact %v", checked, err)
		}
		return err
	}
	for _, patch := range []int64{3, 2} {
		err := create(patch, "2.1.0")
		wantCode(t, err, mds.ECONFLICT)
		wantMessage(t, err, fmt.Sprintf("patch version %d is not above 3, the last hotpatch of android 2.1.0; pack it with --patch-version 4", patch))
	}
	// Patch versions count per platform and app version, and per app.
	if err := create(1, "2.2.0"); err != nil {
		t.Errorf("patch 1 of another app version: %v", err)
	}
	ios, iosBlob := NewHotpatch(t, shop, 1, "2.1.0")
	ios.Platform = mds.IOS
	if err := ios.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), ios, iosBlob); err != nil {
		t.Errorf("patch 1 of another platform: %v", err)
	}
	MustCreateHotpatch(t, s, blog, 1, "2.1.0")
	// A hotpatch of several app versions is checked against each.
	err = create(3, "2.1.1", "2.1.0")
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "2.1.0")
	if err := create(4, "2.1.0", "2.1.1"); err != nil {
		t.Fatalf("patch 4 of 2.1.0 and 2.1.1: %v", err)
	}
	for _, patch := range []int64{2, 4} {
		err := create(patch, "2.1.1")
		wantCode(t, err, mds.ECONFLICT)
		wantMessage(t, err, "above 4, the last hotpatch of android 2.1.1")
	}
	// One app version named for two builds, apart, is one app version.
	builds, buildsBlob := NewHotpatch(t, shop, 5, "2.1.0", "2.3.0")
	builds.Spec.(*mds.HotpatchSpec).Targets = []mds.HotpatchTarget{{AppVersion: "2.1.0", Build: 210}, {AppVersion: "2.3.0"}, {AppVersion: "2.1.0", Build: 211}}
	if err := builds.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), builds, buildsBlob); err != nil {
		t.Errorf("a hotpatch of two builds of 2.1.0: %v", err)
	}
	wantCode(t, create(5, "2.3.0"), mds.ECONFLICT)

	// A deleted hotpatch keeps its patch version used.
	gone := MustCreateHotpatch(t, s, shop, 6, "2.5.0")
	if err := s.DeleteArtifact(ctx(), shop.ID, gone.ID); err != nil {
		t.Fatal(err)
	}
	err = create(6, "2.5.0")
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "--patch-version 7")
	if err := create(7, "2.5.0"); err != nil {
		t.Errorf("patch 7 after 6 was deleted: %v", err)
	}

	// A retired key signs no more.
	if _, err := s.RetireTeamKey(ctx(), shop.ID, TestKeyID, "ci"); err != nil {
		t.Fatal(err)
	}
	late, lateBlob := NewHotpatch(t, shop, 10, "2.1.0")
	err = s.CreateArtifact(ctx(), late, lateBlob)
	wantCode(t, err, mds.EINVALID)
	wantMessage(t, err, TestKeyID, "retired on")
	_, err = s.FindBlob(ctx(), shop.ID, lateBlob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)
	orphan, orphanBlob := NewHotpatch(t, &mds.App{ID: 9999}, 1)
	wantCode(t, s.CreateArtifact(ctx(), orphan, orphanBlob), mds.ENOTFOUND)

	if list, err := s.ListArtifacts(ctx(), shop.ID, mds.KindHotpatch, mds.Page{}); err != nil || len(list) != 6 {
		t.Errorf("ListArtifacts(hotpatch) = %v, %v; want the 6 stored and not deleted", list, err)
	}
	if revision(t, s) != rev {
		t.Error("storing hotpatches moved the revision; no task delivers them")
	}
	// The app goes with its keys and the patch versions it used.
	if err := s.DeleteApp(ctx(), shop.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindTeamKey(ctx(), shop.ID, TestKeyID)
	wantCode(t, err, mds.ENOTFOUND)
	if _, err := s.FindTeamKey(ctx(), blog.ID, TestKeyID); err != nil {
		t.Errorf("deleting shop took blog's key: %v", err)
	}
}

// testUploadedBlobs: the files uploaded with an artifact of any kind are
// the app's once it is stored, and not if it is refused.
func testUploadedBlobs(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	blob := mds.Blob{SHA256: strings.Repeat("d", 64), Size: 77}
	p := &mds.Artifact{AppID: a.ID, Kind: mds.KindUpgrade, Platform: mds.Android, Version: "2.0", CreatedBy: "ci",
		Spec: &mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: blob.SHA256, Size: blob.Size + 1}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateArtifact(ctx(), p, blob), mds.EINVALID) // of another size than uploaded
	_, err := s.FindBlob(ctx(), a.ID, blob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)
	p.Spec.(*mds.UpgradeSpec).Size = blob.Size
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), p, blob, blob); err != nil {
		t.Fatalf("an upgrade with its file uploaded (twice over): %v", err)
	}
	if b, err := s.FindBlob(ctx(), a.ID, blob.SHA256); err != nil || b.Size != blob.Size {
		t.Errorf("FindBlob = %+v, %v", b, err)
	}
	// Recorded already, it is recorded again as a no-op.
	p.ID = 0
	if err := s.CreateArtifact(ctx(), p, blob); err != nil {
		t.Errorf("a second upgrade of an uploaded file: %v", err)
	}
}

// testHotpatchRace: of many uploads of one patch version of one app
// version, exactly one is stored, and the others leave no trace.
func testHotpatchRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustAddTeamKey(t, s, a, TestKeyID)
	const n = 8
	errs := make([]error, n)
	blobs := make([]mds.Blob, n)
	var wg sync.WaitGroup
	for i := range n {
		hp, _ := NewHotpatch(t, a, 1, "3.0.0")
		p := hp.Spec.(*mds.HotpatchSpec)
		p.SHA256 = fmt.Sprintf("%064x", 0xf00+i) // each its own file
		if err := hp.Validate(); err != nil {
			t.Fatal(err)
		}
		blobs[i] = mds.Blob{SHA256: p.SHA256, Size: p.Size}
		wg.Go(func() { errs[i] = s.CreateArtifact(ctx(), hp, blobs[i]) })
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
	if list, _ := s.ListArtifacts(ctx(), a.ID, mds.KindHotpatch, mds.Page{}); ok != 1 || len(list) != 1 {
		t.Errorf("%d of %d racing uploads of patch 1 succeeded, storing %d; want exactly 1", ok, n, len(list))
	}

	// Racing patch versions 1 to n of another app version: those stored,
	// in the order they were (their IDs), have growing patch versions,
	// each upload having seen the ones before.
	for i := range n {
		hp, blob := NewHotpatch(t, a, int64(i+1), "3.1.0")
		wg.Go(func() { errs[i] = s.CreateArtifact(ctx(), hp, blob) })
	}
	wg.Wait()
	for _, err := range errs {
		if code := mds.ErrorCode(err); code != "" && code != mds.ECONFLICT {
			t.Errorf("racing uploads of patch versions: %v", err)
		}
	}
	list, err := s.ListArtifacts(ctx(), a.ID, mds.KindHotpatch, mds.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, hp := range slices.Backward(list) { // oldest first
		if p := hp.Spec.(*mds.HotpatchSpec); p.Targets[0].AppVersion == "3.1.0" {
			versions = append(versions, p.PatchVersion)
		}
	}
	growing := len(versions) > 0
	for i := 1; i < len(versions); i++ {
		growing = growing && versions[i] > versions[i-1]
	}
	if !growing {
		t.Errorf("racing uploads stored patch versions %v, in that order; want them growing", versions)
	}
}

// testRollback: a rolled-back hotpatch task is finished (it holds no
// references and blocks neither dropping its platform nor deleting its
// app) but is still delivered, to tell the devices that applied its patch
// to roll back, and so it cannot be deleted.
func testRollback(t *testing.T, s mds.Store) {
	shop := MustCreateApp(t, s, "shop")
	blog := MustCreateApp(t, s, "blog")
	rs := &mds.RuleSet{AppID: shop.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	wl := &mds.Whitelist{AppID: shop.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	hp := MustCreateHotpatch(t, s, shop, 1, "2.1.0")
	task := NewHotpatchTask(t, hp, mds.Targeting{RuleSets: []int64{rs.ID}, Whitelists: []int64{wl.ID}})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	MustCreateTask(t, s, MustCreatePackage(t, s, blog, "2.0")) // another app's, a draft
	wantCode(t, s.DeleteRuleSet(ctx(), shop.ID, rs.ID), mds.ECONFLICT)
	wantCode(t, s.DeleteApp(ctx(), shop.ID), mds.ECONFLICT)

	since := revision(t, s)
	got, err := apply(s, task, mds.ActionRollback)
	if err != nil || got.Status != mds.StatusRolledBack {
		t.Fatalf("rollback: %+v, %v", got, err)
	}
	if revision(t, s) <= since {
		t.Error("rolling back did not move the revision")
	}
	if h := history(t, s, task, mds.Page{}); h != "[created:draft release:live rollback:rolled_back]" {
		t.Errorf("history %s", h)
	}
	for _, load := range []struct {
		what  string
		since int64
	}{{"everything", 0}, {"the apps changed", since}} {
		set, err := s.LoadLive(ctx(), load.since)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(set.Tasks, func(x *mds.Task) bool { return x.ID == task.ID })
		if i < 0 || set.Tasks[i].Status != mds.StatusRolledBack || !slices.ContainsFunc(set.Artifacts, func(a *mds.Artifact) bool { return a.ID == hp.ID }) {
			t.Errorf("LoadLive of %s: tasks %v, artifacts %v; want task %d, rolled back, and hotpatch %d", load.what, set.Tasks, set.Artifacts, task.ID, hp.ID)
		}
	}
	err = s.DeleteTask(ctx(), shop.ID, task.ID)
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "rolled back")
	wantCode(t, s.DeleteArtifact(ctx(), shop.ID, hp.ID), mds.ECONFLICT)
	// It holds on to nothing.
	if err := s.DeleteRuleSet(ctx(), shop.ID, rs.ID); err != nil {
		t.Errorf("deleting a rule set only a rolled-back task names: %v", err)
	}
	if err := s.DeleteWhitelist(ctx(), shop.ID, wl.ID); err != nil {
		t.Errorf("deleting a whitelist only a rolled-back task names: %v", err)
	}

	// Paused and stopped hotpatches roll back too; a finished app goes.
	paused := NewHotpatchTask(t, MustCreateHotpatch(t, s, shop, 2, "2.1.0"), mds.Targeting{})
	paused.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), paused, "tester"); err != nil {
		t.Fatal(err)
	}
	stopped := NewHotpatchTask(t, MustCreateHotpatch(t, s, shop, 3, "2.1.0"), mds.Targeting{})
	stopped.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), stopped, "tester"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		task *mds.Task
		a    mds.Action
	}{{paused, mds.ActionPause}, {paused, mds.ActionRollback}, {stopped, mds.ActionStop}, {stopped, mds.ActionRollback}} {
		if _, err := apply(s, step.task, step.a); err != nil {
			t.Fatalf("task %d: %s: %v", step.task.ID, step.a, err)
		}
	}
	if rolled, err := s.ListTasks(ctx(), shop.ID, mds.StatusRolledBack, mds.Page{}); err != nil || len(rolled) != 3 {
		t.Errorf("ListTasks(rolled_back) = %v, %v; want 3", rolled, err)
	}
	if _, err := s.UpdateApp(ctx(), shop.ID, func(a *mds.App) error { a.Platforms = []mds.Platform{mds.IOS}; return nil }); err != nil {
		t.Errorf("dropping the platform of rolled-back tasks only: %v", err)
	}
	if err := s.DeleteApp(ctx(), shop.ID); err != nil {
		t.Errorf("deleting an app whose tasks are all finished: %v", err)
	}
	set, err := s.LoadLive(ctx(), 0)
	if err != nil || len(set.Tasks) != 0 || len(set.Artifacts) != 0 {
		t.Errorf("LoadLive after the app went: %+v, %v; want no tasks", set, err)
	}
}

// testAppWritesRace races every kind of write to one app: those that lock
// the app's row (UpdateApp, team keys, hotpatches), those that lock a row
// of their own and then move the revision (tasks, rule sets), and those
// that only refer to the app (blobs). None may fail for another, as a
// deadlock would, and the app ends at the revision of its last write.
func testAppWritesRace(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustAddTeamKey(t, s, a, TestKeyID)
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	rs := &mds.RuleSet{AppID: a.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 6*rounds)
	for i := range rounds {
		wg.Go(func() {
			_, err := s.UpdateApp(ctx(), a.ID, func(a *mds.App) error { a.Name = fmt.Sprint("Shop ", i); return nil })
			errs <- err
		})
		wg.Go(func() {
			_, err := s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) { return "targeting", nil })
			errs <- err
		})
		wg.Go(func() {
			errs <- s.UpdateRuleSet(ctx(), &mds.RuleSet{ID: rs.ID, AppID: a.ID, Name: "r", Rules: rs.Rules})
		})
		wg.Go(func() {
			hp, blob := NewHotpatch(t, a, int64(i+1), "2.1.0")
			if err := s.CreateArtifact(ctx(), hp, blob); mds.ErrorCode(err) != mds.ECONFLICT {
				errs <- err
			}
		})
		wg.Go(func() {
			errs <- s.AddBlob(ctx(), a.ID, mds.Blob{SHA256: fmt.Sprintf("%064x", 0xb10b+i), Size: 1}, "ci")
		})
		wg.Go(func() {
			errs <- s.AddTeamKey(ctx(), &mds.TeamKey{AppID: a.ID, ID: fmt.Sprintf("%064x", 0xcafe+i), Alg: "ed25519", PEM: testKeyPEM, Name: "k", CreatedBy: "ci"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("racing writes to one app: %v", err)
		}
	}
	got, err := s.FindApp(ctx(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if rev := revision(t, s); got.Revision != rev {
		t.Errorf("after racing writes the app is at revision %d, the store at %d", got.Revision, rev)
	}
}

// testNoRelease: a withdrawn patch, or one signed by a key retired since,
// is not made live again, by a new task or by releasing or resuming one;
// what is live keeps running.
func testNoRelease(t *testing.T, s mds.Store) {
	shop := MustCreateApp(t, s, "shop")
	p := MustCreateHotpatch(t, s, shop, 1)
	rolled := NewHotpatchTask(t, p, mds.Targeting{})
	rolled.Status = mds.StatusLive
	draft := NewHotpatchTask(t, p, mds.Targeting{})
	for _, task := range []*mds.Task{rolled, draft} {
		if err := s.CreateTask(ctx(), task, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := apply(s, rolled, mds.ActionRollback); err != nil {
		t.Fatal(err)
	}
	again := NewHotpatchTask(t, p, mds.Targeting{})
	again.Status = mds.StatusLive
	err := s.CreateTask(ctx(), again, "test")
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "rolled back by task", "new patch version")
	_, err = apply(s, draft, mds.ActionRelease)
	wantCode(t, err, mds.ECONFLICT)
	if _, err := apply(s, draft, mds.ActionStop); err != nil {
		t.Errorf("stopping a task of a withdrawn patch: %v", err)
	}

	// Another key: a live task keeps running once its key is retired, and
	// cannot be resumed after a pause; a draft cannot be released.
	blog := MustCreateApp(t, s, "blog")
	q := MustCreateHotpatch(t, s, blog, 1)
	live, waiting := NewHotpatchTask(t, q, mds.Targeting{}), NewHotpatchTask(t, q, mds.Targeting{})
	live.Status = mds.StatusLive
	for _, task := range []*mds.Task{live, waiting} {
		if err := s.CreateTask(ctx(), task, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RetireTeamKey(ctx(), blog.ID, TestKeyID, "test"); err != nil {
		t.Fatal(err)
	}
	_, err = apply(s, waiting, mds.ActionRelease)
	wantCode(t, err, mds.ECONFLICT)
	wantMessage(t, err, "retired")
	if _, err := apply(s, live, mds.ActionPause); err != nil {
		t.Fatal(err)
	}
	_, err = apply(s, live, mds.ActionResume)
	wantCode(t, err, mds.ECONFLICT)
	if got, err := s.FindTask(ctx(), blog.ID, live.ID); err != nil || got.Status != mds.StatusPaused {
		t.Errorf("a refused resume changed the task: %+v, %v", got, err)
	}
}
