// Package storetest is the conformance suite every mds.Store implementation
// passes. Adapters call Run from their own tests with a function that opens a
// fresh, empty, migrated store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
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
		{"TaskTargeting", testTaskTargeting},
		{"RuleSets", testRuleSets},
		{"Whitelists", testWhitelists},
		{"WhitelistReplaceAborts", testWhitelistAbort},
		{"WhitelistConcurrentEdits", testWhitelistConcurrent},
		{"AdmissionCapIsExact", testAdmissions},
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
	rs := &mds.RuleSet{AppID: a.ID, Name: "r", Rules: []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"x"}}}}
	wl := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
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
	if len(set.RuleSets) != 1 || set.RuleSets[0].ID != rs.ID || len(set.Whitelists) != 1 || set.Whitelists[0].ID != wl.ID {
		t.Errorf("LoadLive rule sets %v, whitelists %v; want the app's one of each", set.RuleSets, set.Whitelists)
	}
	if len(set.Apps) != 2 || len(set.Tasks) != 1 || set.Tasks[0].ID != t1.ID ||
		len(set.Packages) != 1 || set.Packages[0].ID != p1.ID {
		t.Errorf("LoadLive = %d apps, tasks %v, packages %v; want 2 apps, task %d, package %d",
			len(set.Apps), set.Tasks, set.Packages, t1.ID, p1.ID)
	}
}

func testTaskTargeting(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	other := MustCreateApp(t, s, "blog")
	p := MustCreatePackage(t, s, a, "2.0")
	rs := &mds.RuleSet{AppID: a.ID, Name: "android 12+", Rules: []mds.Rule{{Field: "os_version", Operator: mds.OpVersionGte, Values: []string{"12"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	wl := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), wl); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	task := &mds.Task{AppID: a.ID, PackageID: p.ID, Mode: mds.ModeForce, Status: mds.StatusDraft, Targeting: mds.Targeting{
		Rules:      []mds.Rule{{Field: "city", Operator: mds.OpIn, Values: []string{"Shanghai"}, CaseInsensitive: true}},
		RuleSets:   []int64{rs.ID},
		Whitelists: []int64{wl.ID},
		Rollout:    &mds.Rollout{Percent: 12.5, Stickiness: mds.StickyUser, Ramp: []mds.RampStep{{At: start, Percent: 50}}},
		Window:     &mds.Window{Start: start, End: start.Add(time.Hour), Cap: 100},
	}}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindTask(ctx(), a.ID, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage != mds.StageGray || fmt.Sprintf("%+v", got.Targeting.Rollout) != fmt.Sprintf("%+v", task.Targeting.Rollout) ||
		!got.Targeting.Window.Start.Equal(start) || got.Targeting.Salt == "" || got.Targeting.Salt != task.Targeting.Salt ||
		len(got.Targeting.Rules) != 1 || !got.Targeting.Rules[0].CaseInsensitive || got.Targeting.Whitelists[0] != wl.ID {
		t.Errorf("targeting did not round-trip: %+v", got.Targeting)
	}
	// References must stay within the app, on create and on update.
	foreign := &mds.RuleSet{AppID: other.ID, Name: "x", Rules: rs.Rules}
	if err := s.CreateRuleSet(ctx(), foreign); err != nil {
		t.Fatal(err)
	}
	bad := &mds.Task{AppID: a.ID, PackageID: p.ID, Mode: mds.ModeForce, Status: mds.StatusDraft, Targeting: mds.Targeting{RuleSets: []int64{foreign.ID}}}
	bad.Validate()
	wantCode(t, s.CreateTask(ctx(), bad, "tester"), mds.ENOTFOUND)
	_, err = s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		t.Targeting.Whitelists = []int64{wl.ID + 1000}
		return "targeting", nil
	})
	wantCode(t, err, mds.ENOTFOUND)
	updated, err := s.UpdateTask(ctx(), a.ID, task.ID, "tester", func(t *mds.Task) (string, error) {
		return "promote", t.Apply(mds.ActionPromote)
	})
	if err != nil || updated.Stage != mds.StageOfficial {
		t.Fatalf("promote: %+v %v", updated, err)
	}
	events, _ := s.TaskEvents(ctx(), a.ID, task.ID)
	if last := events[len(events)-1]; last.Action != "promote" || last.Stage != mds.StageOfficial {
		t.Errorf("last event %+v", last)
	}
}

func testRuleSets(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	rs := &mds.RuleSet{AppID: a.ID, Name: "east china", Rules: []mds.Rule{{Field: "region", Operator: mds.OpIn, Values: []string{"CN-31", "CN-32"}}}}
	if err := s.CreateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateRuleSet(ctx(), &mds.RuleSet{AppID: a.ID, Name: "east china", Rules: rs.Rules}), mds.ECONFLICT)
	rev := revision(t, s)
	rs.Rules = append(rs.Rules, mds.Rule{Field: "network", Operator: mds.OpIn, Values: []string{"wifi"}})
	if err := s.UpdateRuleSet(ctx(), rs); err != nil {
		t.Fatal(err)
	}
	if revision(t, s) <= rev {
		t.Error("editing a rule set did not move the revision; tasks using it would not follow")
	}
	got, err := s.FindRuleSet(ctx(), a.ID, rs.ID)
	if err != nil || len(got.Rules) != 2 || got.Rules[1].Values[0] != "wifi" {
		t.Errorf("FindRuleSet = %+v, %v", got, err)
	}
	list, err := s.ListRuleSets(ctx(), a.ID)
	if err != nil || len(list) != 1 {
		t.Errorf("ListRuleSets = %v, %v", list, err)
	}
	task := &mds.Task{AppID: a.ID, PackageID: MustCreatePackage(t, s, a, "2.0").ID, Mode: mds.ModeForce, Status: mds.StatusDraft,
		Targeting: mds.Targeting{RuleSets: []int64{rs.ID}}}
	task.Validate()
	if err := s.CreateTask(ctx(), task, "tester"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.DeleteRuleSet(ctx(), a.ID, rs.ID), mds.ECONFLICT)
	if _, err := apply(s, task, mds.ActionStop); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRuleSet(ctx(), a.ID, rs.ID); err != nil {
		t.Errorf("deleting a rule set only a stopped task uses: %v", err)
	}
	_, err = s.FindRuleSet(ctx(), a.ID, rs.ID)
	wantCode(t, err, mds.ENOTFOUND)
}

func entries(es ...string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

func testWhitelists(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistDevices}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.CreateWhitelist(ctx(), &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}), mds.ECONFLICT)
	v0 := w.Version
	const n = 1234
	big := make([]string, 0, n+2)
	for i := range n {
		big = append(big, fmt.Sprintf("device-%04d", i))
	}
	big = append(big, "device-0001", "re:^qa-")
	rev := revision(t, s)
	got, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries(big...))
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries != n+1 || got.Patterns != 1 || got.Version <= v0 || revision(t, s) <= rev {
		t.Errorf("after replace: %+v (revision %d→%d)", got, rev, revision(t, s))
	}
	got, err = s.EditWhitelist(ctx(), a.ID, w.ID, []string{"extra-1", "device-0002"}, []string{"device-0000", "nope"})
	if err != nil || got.Entries != n+1 {
		t.Errorf("after edit: %+v, %v; want %d entries", got, err, n+1)
	}
	page, err := s.WhitelistEntries(ctx(), a.ID, w.ID, "", 3)
	if err != nil || fmt.Sprint(page) != "[device-0001 device-0002 device-0003]" {
		t.Errorf("first page %v, %v", page, err)
	}
	page, err = s.WhitelistEntries(ctx(), a.ID, w.ID, "device-1233", 10)
	if err != nil || fmt.Sprint(page) != "[extra-1 re:^qa-]" {
		t.Errorf("last page %v, %v", page, err)
	}
	var loaded []string
	version, err := s.LoadWhitelist(ctx(), w.ID, func(e string) error { loaded = append(loaded, e); return nil })
	if err != nil || len(loaded) != n+1 || version != got.Version {
		t.Errorf("LoadWhitelist: %d entries, version %d (want %d), %v", len(loaded), version, got.Version, err)
	}
	list, err := s.ListWhitelists(ctx(), a.ID)
	if err != nil || len(list) != 1 || list[0].Entries != n+1 {
		t.Errorf("ListWhitelists = %v, %v", list, err)
	}
	other := MustCreateApp(t, s, "blog")
	_, err = s.FindWhitelist(ctx(), other.ID, w.ID)
	wantCode(t, err, mds.ENOTFOUND)
	_, err = s.ReplaceWhitelist(ctx(), other.ID, w.ID, entries("x"))
	wantCode(t, err, mds.ENOTFOUND)

	patterns := make([]string, mds.MaxWhitelistPatterns+1)
	for i := range patterns {
		patterns[i] = fmt.Sprintf("re:^p%d$", i)
	}
	_, err = s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries(patterns...))
	wantCode(t, err, mds.EINVALID)
	if kept, _ := s.FindWhitelist(ctx(), a.ID, w.ID); kept.Entries != n+1 {
		t.Errorf("a refused replace changed the whitelist: %+v", kept)
	}
	if err := s.DeleteWhitelist(ctx(), a.ID, w.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.FindWhitelist(ctx(), a.ID, w.ID)
	wantCode(t, err, mds.ENOTFOUND)
}

func testWhitelistAbort(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "testers", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, entries("alice", "bob")); err != nil {
		t.Fatal(err)
	}
	// A bad line far into a large file: nothing of the new file may stay.
	broken := func(yield func(string, error) bool) {
		for i := range 2000 {
			if !yield(fmt.Sprintf("user-%d", i), nil) {
				return
			}
		}
		yield("", mds.Errorf(mds.EINVALID, "line 2001: bad entry"))
	}
	_, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, broken)
	wantCode(t, err, mds.EINVALID)
	got, _ := s.FindWhitelist(ctx(), a.ID, w.ID)
	page, _ := s.WhitelistEntries(ctx(), a.ID, w.ID, "", 10)
	if got.Entries != 2 || fmt.Sprint(page) != "[alice bob]" {
		t.Errorf("after a failed replace: %+v %v; want the old two entries", got, page)
	}
}

// testAdmissions races many admissions of distinct and repeated devices at
// one window: exactly limit get in, repeats do not count twice, and the
// admitted list agrees.
func testAdmissions(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	task := MustCreateTask(t, s, MustCreatePackage(t, s, a, "2.0"))
	const limit, devices, rounds = 10, 30, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	in := map[string]bool{}
	for r := range rounds {
		for d := range devices {
			wg.Go(func() {
				id := fmt.Sprintf("device-%02d", d)
				ok, err := s.Admit(ctx(), task.ID, id, limit, time.Now())
				if err != nil {
					t.Errorf("round %d: %v", r, err)
					return
				}
				if ok {
					mu.Lock()
					in[id] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(in) != limit {
		t.Fatalf("%d distinct devices admitted, want exactly %d", len(in), limit)
	}
	admitted, err := s.Admitted(ctx(), task.ID)
	if err != nil || len(admitted) != limit {
		t.Fatalf("Admitted = %v, %v", admitted, err)
	}
	for _, d := range admitted {
		if !in[d] {
			t.Errorf("store lists %s, which was refused", d)
		}
		if ok, err := s.Admit(ctx(), task.ID, d, limit, time.Now()); !ok || err != nil {
			t.Errorf("admitted device %s refused on its next check: %v", d, err)
		}
	}
	if ok, _ := s.Admit(ctx(), task.ID, "latecomer", limit, time.Now()); ok {
		t.Error("a device got past a full window")
	}
	if in, n, err := s.AdmissionStatus(ctx(), task.ID, admitted[0]); err != nil || !in || n != limit {
		t.Errorf("AdmissionStatus(admitted) = %v, %d, %v; want true, %d", in, n, err, limit)
	}
	if in, n, err := s.AdmissionStatus(ctx(), task.ID, "latecomer"); err != nil || in || n != limit {
		t.Errorf("AdmissionStatus(refused) = %v, %d, %v; want false, %d", in, n, err, limit)
	}
	// Raising the cap lets more in, still counted exactly.
	if ok, _ := s.Admit(ctx(), task.ID, "latecomer", limit+1, time.Now()); !ok {
		t.Error("a raised cap did not admit the next device")
	}
	if ok, _ := s.Admit(ctx(), task.ID, "second-latecomer", limit+1, time.Now()); ok {
		t.Error("the raised cap admitted one too many")
	}
}

// testWhitelistConcurrent races edits and replaces of one whitelist: every
// change must move the version, and a replace must replace, not merge.
func testWhitelistConcurrent(t *testing.T, s mds.Store) {
	a := MustCreateApp(t, s, "shop")
	w := &mds.Whitelist{AppID: a.ID, Name: "w", Kind: mds.WhitelistUsers}
	if err := s.CreateWhitelist(ctx(), w); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if _, err := s.EditWhitelist(ctx(), a.ID, w.ID, []string{fmt.Sprintf("edit-%d", i)}, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := s.FindWhitelist(ctx(), a.ID, w.ID)
	if got.Version != w.Version+4 || got.Entries != 4 {
		t.Errorf("after 4 concurrent edits: version %d (want %d), %d entries", got.Version, w.Version+4, got.Entries)
	}
	file := func(prefix string) iter.Seq2[string, error] {
		return func(yield func(string, error) bool) {
			for i := range 1500 {
				if !yield(fmt.Sprintf("%s-%d", prefix, i), nil) {
					return
				}
			}
		}
	}
	for _, p := range []string{"a", "b"} {
		wg.Go(func() {
			if _, err := s.ReplaceWhitelist(ctx(), a.ID, w.ID, file(p)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ = s.FindWhitelist(ctx(), a.ID, w.ID)
	if got.Entries != 1500 {
		t.Errorf("two concurrent replaces left %d entries; one file of 1500 should win whole", got.Entries)
	}
}
