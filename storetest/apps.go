package storetest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

func testApps(t *testing.T, s mds.Store) {
	rev0 := revision(t, s)
	a := MustCreateApp(t, s, "shop")
	if a.ID == 0 || a.CreatedAt.IsZero() {
		t.Fatalf("CreateApp did not set ID and CreatedAt: %+v", a)
	}
	if revision(t, s) <= rev0 {
		t.Error("creating an app did not move the revision")
	}
	got, err := s.FindApp(ctx(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Key != a.Key || got.Name != a.Name || len(got.Platforms) != 2 ||
		got.Platforms[0] != mds.Android || got.Platforms[1] != mds.IOS || !got.CreatedAt.Equal(a.CreatedAt) || got.PreviousKey != "" {
		t.Errorf("FindApp = %+v, want %+v", got, a)
	}
	dup := &mds.App{Slug: "shop", Name: "x", Key: mds.NewAppKey(), Platforms: []mds.Platform{mds.Android}}
	wantCode(t, s.CreateApp(ctx(), dup), mds.ECONFLICT)
	sameKey := &mds.App{Slug: "other", Name: "x", Key: a.Key, Platforms: []mds.Platform{mds.Android}}
	wantCode(t, s.CreateApp(ctx(), sameKey), mds.ECONFLICT)
	_, err = s.FindApp(ctx(), "nope")
	wantCode(t, err, mds.ENOTFOUND)

	MustCreateApp(t, s, "blog")
	MustCreateApp(t, s, "cafe")
	apps, err := s.ListApps(ctx(), mds.Page{})
	if err != nil || len(apps) != 3 || apps[0].Slug != "blog" || apps[2].Slug != "shop" {
		t.Errorf("ListApps = %v, %v; want blog, cafe, shop", apps, err)
	}
	page, err := s.ListApps(ctx(), mds.Page{Limit: 2})
	if err != nil || len(page) != 2 || page[1].Slug != "cafe" {
		t.Fatalf("first page %v, %v", page, err)
	}
	page, err = s.ListApps(ctx(), mds.Page{After: page[1].Slug, Limit: 2})
	if err != nil || len(page) != 1 || page[0].Slug != "shop" {
		t.Errorf("second page %v, %v; want shop only", page, err)
	}
	_, err = s.ListApps(ctx(), mds.Page{Limit: mds.MaxPageLimit + 1})
	wantCode(t, err, mds.EINVALID)
}

func testUpdateApp(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	b := MustCreateApp(t, s, "blog")
	rev := revision(t, s)
	old := a.Key
	got, err := s.UpdateApp(ctx(), a.ID, func(a *mds.App) error {
		a.Name, a.Slug = "Shop Two", "shop-2"
		a.PreviousKey, a.Key = a.Key, mds.NewAppKey()
		return nil
	})
	if err != nil || got.Slug != "shop-2" || got.PreviousKey != old || got.Key == old {
		t.Fatalf("UpdateApp = %+v, %v", got, err)
	}
	if revision(t, s) <= rev {
		t.Error("a new app key did not move the revision; devices would not be answered under it")
	}
	if found, err := s.FindApp(ctx(), "shop-2"); err != nil || found.PreviousKey != old || found.Name != "Shop Two" {
		t.Errorf("after rename: %+v, %v", found, err)
	}
	_, err = s.UpdateApp(ctx(), b.ID, func(b *mds.App) error { b.Slug = "shop-2"; return nil })
	wantCode(t, err, mds.ECONFLICT)
	_, err = s.UpdateApp(ctx(), b.ID, func(b *mds.App) error { b.PreviousKey = old; return nil })
	wantCode(t, err, mds.ECONFLICT)

	// A platform a running task delivers to stays; once it is stopped it may go.
	p := MustCreatePackage(t, s, a, "2.0")
	task := MustCreateTask(t, s, p)
	_, err = s.UpdateApp(ctx(), a.ID, func(a *mds.App) error { a.Platforms = []mds.Platform{mds.IOS}; return nil })
	wantCode(t, err, mds.ECONFLICT)
	if _, err := apply(s, task, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UpdateApp(ctx(), a.ID, func(a *mds.App) error { a.Platforms = []mds.Platform{mds.IOS}; return nil }); err != nil || len(got.Platforms) != 1 {
		t.Errorf("dropping a platform only a stopped task used: %+v, %v", got, err)
	}
	_, err = s.UpdateApp(ctx(), 9999, func(*mds.App) error { return nil })
	wantCode(t, err, mds.ENOTFOUND)
}

func testDeleteApp(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	keep := MustCreateApp(t, s, "blog")
	blob := mds.Blob{SHA256: strings.Repeat("1", 64), Size: 3}
	if err := s.AddBlob(ctx(), a.ID, blob, "ci"); err != nil {
		t.Fatal(err)
	}
	p := MustCreatePackage(t, s, a, "2.0")
	rs := &mds.RuleSet{AppID: a.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	wl := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceWhitelist(ctx(), a.ID, wl.ID, entries("alice")); err != nil {
		t.Fatal(err)
	}
	task := NewTask(t, p, mds.Targeting{RuleSets: []int64{rs.ID}, Whitelists: []int64{wl.ID}, Window: &mds.Window{Start: farFuture.Add(-time.Hour), End: farFuture, Cap: 5}})
	task.Status = mds.StatusLive
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Admit(ctx(), mds.Admission{TaskID: task.ID, Devices: []string{"d1"}, At: farFuture}); err != nil || !ok[0] {
		t.Fatal(ok, err)
	}
	tok := &mds.Token{Name: "ci", Hash: mds.HashToken("s"), Grants: []mds.Grant{{AppID: a.ID, Role: mds.RoleViewer}, {AppID: keep.ID, Role: mds.RoleViewer}}}
	if err := s.CreateToken(ctx(), tok); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteApp(ctx(), a.ID), mds.ECONFLICT)
	if _, err := apply(s, task, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	if err := s.DeleteApp(ctx(), a.ID); err != nil {
		t.Fatalf("deleting an app whose tasks are stopped: %v", err)
	}
	if revision(t, s) <= rev {
		t.Error("deleting an app did not move the revision")
	}
	_, err := s.FindApp(ctx(), "shop")
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindArtifact(ctx(), a.ID, p.ID)
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindBlob(ctx(), a.ID, blob.SHA256)
	wantCode(t, err, mds.ENOTFOUND)
	if got, err := s.FindToken(ctx(), tok.ID); err != nil || len(got.Grants) != 1 || got.Grants[0].AppID != keep.ID {
		t.Errorf("token after its app was deleted: %+v, %v; want only the blog grant", got, err)
	}
	if _, err := s.FindApp(ctx(), "blog"); err != nil {
		t.Errorf("deleting one app touched another: %v", err)
	}
	wantCode(t, s.DeleteApp(ctx(), a.ID), mds.ENOTFOUND)
}

func testPackages(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	sum := fmt.Sprintf("%064x", 42)
	in := &mds.Artifact{AppID: a.ID, Kind: mds.KindUpgrade, Platform: mds.IOS, Version: "2.4.0", CreatedBy: "ci",
		Spec: &mds.UpgradeSpec{Build: 240, Notes: "Faster.\nFixes crash on launch.",
			Source: mds.SourceBlob, SHA256: sum, Size: 1 << 33, FileName: "shop.ipa",
			AppVersions: []version.Range{{Min: "1.0", Max: "1.9.9"}, {Min: "2.0"}}, Channel: "official",
			Network: mds.NetworkWiFi, Silent: true, Enterprise: true, BundleID: "com.example.shop", Title: "Shop"}}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	// The blob must be this app's upload, of this size.
	wantCode(t, s.CreateArtifact(ctx(), in), mds.EINVALID)
	other := MustCreateApp(t, s, "blog")
	if err := s.AddBlob(ctx(), other.ID, mds.Blob{SHA256: sum, Size: 1 << 33}, "ci"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateArtifact(ctx(), in), mds.EINVALID)
	if err := s.AddBlob(ctx(), a.ID, mds.Blob{SHA256: sum, Size: 1 << 32}, "ci"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateArtifact(ctx(), in), mds.EINVALID)
	if b, err := s.FindBlob(ctx(), a.ID, sum); err != nil || b.Size != 1<<32 {
		t.Fatalf("FindBlob = %+v, %v", b, err)
	}
	// Recording the same content again keeps the first record.
	if err := s.AddBlob(ctx(), a.ID, mds.Blob{SHA256: sum, Size: 1 << 33}, "ci"); err != nil {
		t.Fatal(err)
	}
	in.Spec.(*mds.UpgradeSpec).Size = 1 << 32
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	if err := s.CreateArtifact(ctx(), in); err != nil {
		t.Fatal(err)
	}
	if revision(t, s) != rev {
		t.Error("a package no task delivers changed the revision; snapshots would rebuild for nothing")
	}
	got, err := s.FindArtifact(ctx(), a.ID, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("package did not round-trip:\n got %+v %+v\nwant %+v %+v", *got, got.Spec, *in, in.Spec)
	}
	if len(got.Blobs) != 1 || got.Blobs[0] != (mds.BlobRef{Role: mds.BlobPackage, SHA256: sum, Size: 1 << 32}) {
		t.Errorf("blobs = %+v", got.Blobs)
	}
	second := MustCreatePackage(t, s, a, "2.5.0")
	third := MustCreatePackage(t, s, a, "2.6.0")
	list, err := s.ListArtifacts(ctx(), a.ID, "", mds.Page{})
	if err != nil || len(list) != 3 || list[0].ID != third.ID || list[2].ID != in.ID || len(list[2].Blobs) != 1 {
		t.Errorf("ListArtifacts = %v, %v; want newest first, with blobs", list, err)
	}
	page, err := s.ListArtifacts(ctx(), a.ID, mds.KindUpgrade, mds.Page{After: fmt.Sprint(third.ID), Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != second.ID {
		t.Errorf("second page = %v, %v; want package %d", page, err, second.ID)
	}
	_, err = s.ListArtifacts(ctx(), a.ID, "", mds.Page{After: "x"})
	wantCode(t, err, mds.EINVALID)

	task := MustCreateTask(t, s, second)
	wantCode(t, s.DeleteArtifact(ctx(), a.ID, second.ID), mds.ECONFLICT)
	if _, err := apply(s, task, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteArtifact(ctx(), a.ID, second.ID), mds.ECONFLICT) // a stopped task still names it
	if err := s.DeleteTask(ctx(), a.ID, task.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteArtifact(ctx(), a.ID, second.ID); err != nil {
		t.Errorf("deleting a package no task names: %v", err)
	}
	wantCode(t, s.DeleteArtifact(ctx(), other.ID, in.ID), mds.ENOTFOUND)
	if err := s.DeleteArtifact(ctx(), a.ID, in.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindArtifact(ctx(), a.ID, in.ID)
	wantCode(t, err, mds.ENOTFOUND)
	// IDs are never reused, even the highest one.
	fourth := MustCreatePackage(t, s, a, "2.7.0")
	if err := s.DeleteArtifact(ctx(), a.ID, fourth.ID); err != nil {
		t.Fatal(err)
	}
	if again := MustCreatePackage(t, s, a, "2.7.1"); again.ID <= fourth.ID {
		t.Errorf("package got ID %d after %d was deleted", again.ID, fourth.ID)
	}
}

func testPackagesScoped(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	b := MustCreateApp(t, s, "blog")
	p := MustCreatePackage(t, s, a, "1.0")
	_, err := s.FindArtifact(ctx(), b.ID, p.ID)
	wantCode(t, err, mds.ENOTFOUND)
	// A task of app b must not deliver app a's package.
	task := NewTask(t, p, mds.Targeting{})
	task.AppID = b.ID
	wantCode(t, s.CreateTask(ctx(), task, "tester"), mds.ENOTFOUND)
	list, err := s.ListArtifacts(ctx(), b.ID, "", mds.Page{})
	if err != nil || len(list) != 0 {
		t.Errorf("ListArtifacts(other app) = %v, %v; want none", list, err)
	}
	_, err = s.FindBlob(ctx(), b.ID, strings.Repeat("a", 64))
	wantCode(t, err, mds.ENOTFOUND)
}
