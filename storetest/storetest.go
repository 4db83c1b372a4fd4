// Package storetest is the conformance suite every mds.Store implementation
// passes. Adapters call Run from their own tests with a function that opens a
// fresh, empty, migrated store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// Opener returns a new empty store; the suite closes it.
type Opener func(t testing.TB) mds.Store

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, mds.Store)
	}{
		{"Apps", testApps},
		{"Packages", testPackages},
		{"PackagesScopedByApp", testPackagesScoped},
		{"Tasks", testTasks},
		{"TaskChangeAborts", testTaskChangeAborts},
		{"TaskConcurrentActions", testTaskConcurrent},
		{"Tokens", testTokens},
		{"LoadLive", testLoadLive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

func ctx() context.Context { return context.Background() }

// MustCreateApp creates an app with the given slug on android and ios.
func MustCreateApp(t testing.TB, s mds.Store, slug string) *mds.App {
	t.Helper()
	a := &mds.App{Slug: slug, Name: "App " + slug, Key: mds.NewAppKey(), Platforms: []mds.Platform{mds.Android, mds.IOS}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateApp(ctx(), a); err != nil {
		t.Fatal(err)
	}
	return a
}

// MustCreatePackage creates an android url package of version v for app.
func MustCreatePackage(t testing.TB, s mds.Store, app *mds.App, v string) *mds.Package {
	t.Helper()
	p := &mds.Package{AppID: app.ID, Platform: mds.Android, Version: v, Build: 1, Source: mds.SourceURL,
		URL: "https://cdn.example.com/app-" + v + ".apk", CreatedBy: "test"}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePackage(ctx(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// MustCreateTask creates a draft single-reminder task for p.
func MustCreateTask(t testing.TB, s mds.Store, p *mds.Package) *mds.Task {
	t.Helper()
	task := &mds.Task{AppID: p.AppID, PackageID: p.ID, Mode: mds.ModeSingle, Status: mds.StatusDraft}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	return task
}

// apply drives a task through an action the way the API does.
func apply(s mds.Store, t *mds.Task, a mds.Action) (*mds.Task, error) {
	return s.UpdateTask(ctx(), t.AppID, t.ID, "tester", func(t *mds.Task) (string, error) {
		return string(a), t.Apply(a)
	})
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got := mds.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func revision(t testing.TB, s mds.Store) int64 {
	t.Helper()
	rev, err := s.Revision(ctx())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

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
		got.Platforms[0] != mds.Android || got.Platforms[1] != mds.IOS || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("FindApp = %+v, want %+v", got, a)
	}
	dup := &mds.App{Slug: "shop", Name: "x", Key: mds.NewAppKey(), Platforms: []mds.Platform{mds.Android}}
	wantCode(t, s.CreateApp(ctx(), dup), mds.ECONFLICT)
	sameKey := &mds.App{Slug: "other", Name: "x", Key: a.Key, Platforms: []mds.Platform{mds.Android}}
	wantCode(t, s.CreateApp(ctx(), sameKey), mds.ECONFLICT)
	_, err = s.FindApp(ctx(), "nope")
	wantCode(t, err, mds.ENOTFOUND)

	MustCreateApp(t, s, "blog")
	apps, err := s.ListApps(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || apps[0].Slug != "blog" || apps[1].Slug != "shop" {
		t.Errorf("ListApps = %v, want blog then shop", apps)
	}
}

func testPackages(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	in := &mds.Package{
		AppID: a.ID, Platform: mds.IOS, Version: "2.4.0", Build: 240, Notes: "Faster.\nFixes crash on launch.",
		Source: mds.SourceBlob, SHA256: fmt.Sprintf("%064x", 42), Size: 1 << 33, FileName: "shop.ipa",
		AppVersions: []version.Range{{Min: "1.0", Max: "1.9.9"}, {Min: "2.0"}}, Channel: "official",
		Network: mds.NetworkWiFi, Silent: true, Enterprise: true, BundleID: "com.example.shop", Title: "Shop",
		CreatedBy: "ci",
	}
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	rev := revision(t, s)
	if err := s.CreatePackage(ctx(), in); err != nil {
		t.Fatal(err)
	}
	if revision(t, s) != rev {
		t.Error("a package no task delivers changed the revision; snapshots would rebuild for nothing")
	}
	got, err := s.FindPackage(ctx(), a.ID, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *in) {
		t.Errorf("package did not round-trip:\n got %+v\nwant %+v", *got, *in)
	}
	MustCreatePackage(t, s, a, "2.5.0")
	list, err := s.ListPackages(ctx(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Version != "2.5.0" || list[1].ID != in.ID {
		t.Errorf("ListPackages = %v, want newest first", list)
	}
}

func testPackagesScoped(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	b := MustCreateApp(t, s, "blog")
	p := MustCreatePackage(t, s, a, "1.0")
	_, err := s.FindPackage(ctx(), b.ID, p.ID)
	wantCode(t, err, mds.ENOTFOUND)
	// A task of app b must not deliver app a's package.
	task := &mds.Task{AppID: b.ID, PackageID: p.ID, Mode: mds.ModeForce, Status: mds.StatusDraft}
	wantCode(t, s.CreateTask(ctx(), task, "tester"), mds.ENOTFOUND)
	list, err := s.ListPackages(ctx(), b.ID)
	if err != nil || len(list) != 0 {
		t.Errorf("ListPackages(other app) = %v, %v; want none", list, err)
	}
}

func testTasks(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	p := MustCreatePackage(t, s, a, "2.0")
	rev := revision(t, s)
	task := MustCreateTask(t, s, p)
	if task.ID == 0 || task.Status != mds.StatusDraft || task.RemindInterval != mds.DefaultRemindInterval {
		t.Fatalf("created task = %+v", task)
	}
	if revision(t, s) <= rev {
		t.Error("creating a task did not move the revision")
	}
	got, err := s.FindTask(ctx(), a.ID, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != mds.ModeSingle || got.RemindInterval != mds.DefaultRemindInterval || got.PackageID != p.ID ||
		got.CreatedBy != "tester" || got.Kind != mds.KindUpgrade {
		t.Errorf("FindTask = %+v", got)
	}
	for _, step := range []struct {
		a    mds.Action
		want mds.Status
	}{{mds.ActionRelease, mds.StatusLive}, {mds.ActionPause, mds.StatusPaused}, {mds.ActionResume, mds.StatusLive}, {mds.ActionStop, mds.StatusStopped}} {
		rev := revision(t, s)
		got, err := apply(s, task, step.a)
		if err != nil {
			t.Fatalf("%s: %v", step.a, err)
		}
		if got.Status != step.want {
			t.Fatalf("%s: status %s, want %s", step.a, got.Status, step.want)
		}
		if revision(t, s) <= rev {
			t.Errorf("%s did not move the revision", step.a)
		}
	}
	_, err = apply(s, task, mds.ActionResume)
	wantCode(t, err, mds.ECONFLICT)

	events, err := s.TaskEvents(ctx(), a.ID, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action+":"+string(e.Status))
	}
	want := "[created:draft release:live pause:paused resume:live stop:stopped]"
	if fmt.Sprint(actions) != want {
		t.Errorf("history = %v, want %s", actions, want)
	}
	other := MustCreateApp(t, s, "blog")
	_, err = s.TaskEvents(ctx(), other.ID, task.ID)
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindTask(ctx(), other.ID, task.ID)
	wantCode(t, err, mds.ENOTFOUND)

	t2 := MustCreateTask(t, s, p)
	if _, err := apply(s, t2, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	live, err := s.ListTasks(ctx(), a.ID, mds.StatusLive)
	if err != nil || len(live) != 1 || live[0].ID != t2.ID {
		t.Errorf("ListTasks(live) = %v, %v; want only task %d", live, err, t2.ID)
	}
	all, err := s.ListTasks(ctx(), a.ID, "")
	if err != nil || len(all) != 2 || all[0].ID != t2.ID {
		t.Errorf("ListTasks(all) = %v, %v; want two, newest first", all, err)
	}
}

func testTaskChangeAborts(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	rev := revision(t, s)
	boom := errors.New("boom")
	_, err := s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		t.Status = mds.StatusLive
		return "release", boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateTask error = %v, want boom", err)
	}
	got, _ := s.FindTask(ctx(), a.ID, task.ID)
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID)
	if got.Status != mds.StatusDraft || len(events) != 1 || revision(t, s) != rev {
		t.Errorf("aborted change left traces: status %s, %d events, revision %d→%d", got.Status, len(events), rev, revision(t, s))
	}
	_, err = s.UpdateTask(ctx(), a.ID, 9999, "tester", func(*mds.Task) (string, error) { return "x", nil })
	wantCode(t, err, mds.ENOTFOUND)
}

// testTaskConcurrent races many releases of one draft: exactly one may win,
// or a task could be released twice and its history lie.
func testTaskConcurrent(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := apply(s, task, mds.ActionRelease)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch mds.ErrorCode(err) {
		case "":
			ok++
		case mds.ECONFLICT:
		default:
			t.Errorf("concurrent release: %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent releases succeeded, want exactly 1", ok)
	}
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID)
	if len(events) != 2 {
		t.Errorf("history has %d events, want created + one release", len(events))
	}
}

func testTokens(t *testing.T, s mds.Store) {
	shop := MustCreateApp(t, s, "shop")
	blog := MustCreateApp(t, s, "blog")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	tok := &mds.Token{Name: "ci", Hash: mds.HashToken("secret-1"), ExpiresAt: &exp, CreatedBy: "root",
		Grants: []mds.Grant{{AppID: shop.ID, App: "shop", Role: mds.RoleReleaser}, {AppID: blog.ID, App: "blog", Role: mds.RoleViewer}}}
	if err := tok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx(), tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTokenByHash(ctx(), mds.HashToken("secret-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.Name != "ci" || got.Admin || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) ||
		len(got.Grants) != 2 || got.Grants[0].App != "blog" || got.Grants[0].Role != mds.RoleViewer {
		t.Errorf("FindTokenByHash = %+v", got)
	}
	if !got.Can(shop.ID, mds.RoleReleaser) || got.Can(shop.ID, mds.RoleAdmin) || got.Can(blog.ID, mds.RoleReleaser) {
		t.Error("grants did not survive the round trip")
	}
	_, err = s.FindTokenByHash(ctx(), mds.HashToken("wrong"))
	wantCode(t, err, mds.ENOTFOUND)
	wantCode(t, s.CreateToken(ctx(), &mds.Token{Name: "ci", Hash: mds.HashToken("x"), Admin: true}), mds.ECONFLICT)

	admin := &mds.Token{Name: "root", Hash: mds.HashToken("root"), Admin: true, ExpiresAt: &exp}
	if err := s.CreateToken(ctx(), admin); err != nil {
		t.Fatal(err)
	}
	if err := s.RekeyToken(ctx(), admin.ID, mds.HashToken("root-2")); err != nil {
		t.Fatal(err)
	}
	if byName, err := s.FindTokenByName(ctx(), "root"); err != nil || byName.Hash != mds.HashToken("root-2") || !byName.Admin || byName.ExpiresAt != nil {
		t.Errorf("FindTokenByName after RekeyToken = %+v, %v; want the new hash and no expiry", byName, err)
	}
	list, err := s.ListTokens(ctx())
	if err != nil || len(list) != 2 || list[0].Name != "ci" || len(list[0].Grants) != 2 || len(list[1].Grants) != 0 {
		t.Errorf("ListTokens = %v, %v", list, err)
	}
	if byID, err := s.FindToken(ctx(), tok.ID); err != nil || byID.Name != "ci" || len(byID.Grants) != 2 {
		t.Errorf("FindToken = %+v, %v", byID, err)
	}
	if byID, err := s.FindToken(ctx(), admin.ID); err != nil || byID.Grants == nil {
		t.Errorf("admin token grants = %#v, %v; want an empty list", byID.Grants, err)
	}
	if err := s.DeleteToken(ctx(), tok.ID); err != nil {
		t.Fatal(err)
	}
	// IDs are never reused, even the highest one: a stale ID (a retried
	// `mds token revoke 7`) must not name a newer token.
	newest := &mds.Token{Name: "newest", Hash: mds.HashToken("secret-3"), Admin: true}
	if err := s.CreateToken(ctx(), newest); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(ctx(), newest.ID); err != nil {
		t.Fatal(err)
	}
	again := &mds.Token{Name: "again", Hash: mds.HashToken("secret-4"), Admin: true}
	if err := s.CreateToken(ctx(), again); err != nil {
		t.Fatal(err)
	}
	if again.ID <= newest.ID {
		t.Errorf("new token got ID %d after %d was deleted; IDs must not be reused", again.ID, newest.ID)
	}
	wantCode(t, s.DeleteToken(ctx(), again.ID), "")
	_, err = s.FindTokenByHash(ctx(), mds.HashToken("secret-1"))
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.FindToken(ctx(), tok.ID)
	wantCode(t, err, mds.ENOTFOUND)
	wantCode(t, s.DeleteToken(ctx(), tok.ID), mds.ENOTFOUND)
	wantCode(t, s.RekeyToken(ctx(), tok.ID, "x"), mds.ENOTFOUND)
}

func testLoadLive(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	MustCreateApp(t, s, "blog")
	p1 := MustCreatePackage(t, s, a, "2.0")
	p2 := MustCreatePackage(t, s, a, "3.0")
	MustCreatePackage(t, s, a, "4.0") // no task
	t1 := MustCreateTask(t, s, p1)
	MustCreateTask(t, s, p2) // draft: not live
	if _, err := apply(s, t1, mds.ActionRelease); err != nil {
		t.Fatal(err)
	}
	set, err := s.LoadLive(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if set.Revision != revision(t, s) {
		t.Errorf("LiveSet revision %d, store revision %d", set.Revision, revision(t, s))
	}
	if len(set.Apps) != 2 || len(set.Tasks) != 1 || set.Tasks[0].ID != t1.ID ||
		len(set.Packages) != 1 || set.Packages[0].ID != p1.ID {
		t.Errorf("LoadLive = %d apps, tasks %v, packages %v; want 2 apps, task %d, package %d",
			len(set.Apps), set.Tasks, set.Packages, t1.ID, p1.ID)
	}
}
