// Package storetest is the conformance suite every mds.Store implementation
// passes. Adapters call Run from their own tests with a function that opens a
// fresh, empty, migrated store.
package storetest

import (
	"context"
	"testing"

	"github.com/mds-dev/mds"
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
		{"UpdateApp", testUpdateApp},
		{"DeleteApp", testDeleteApp},
		{"Packages", testPackages},
		{"PackagesScopedByApp", testPackagesScoped},
		{"Tasks", testTasks},
		{"TaskCreatedLive", testTaskCreatedLive},
		{"TaskDelete", testTaskDelete},
		{"TaskChangeAborts", testTaskChangeAborts},
		{"TaskConcurrentActions", testTaskConcurrent},
		{"Tokens", testTokens},
		{"LoadLive", testLoadLive},
		{"LoadChanges", testLoadChanges},
		{"LoadAgain", testLoadAgain},
		{"ChangeLogEnds", testChangeLogEnds},
		{"WriteRecompilesItsApp", testWriteRecompilesItsApp},
		{"LiveFollowsWrites", testLiveFollowsWrites},
		{"LiveServesBlobs", testLiveServesBlobs},
		{"TaskTargeting", testTaskTargeting},
		{"ReferenceRaces", testReferenceRaces},
		{"RuleSets", testRuleSets},
		{"Whitelists", testWhitelists},
		{"WhitelistPatternCase", testWhitelistPatternCase},
		{"WhitelistReplaceAborts", testWhitelistAbort},
		{"WhitelistConcurrentEdits", testWhitelistConcurrent},
		{"AdmissionCapIsExact", testAdmissions},
		{"SealedWindow", testSealedWindow},
		{"RuleSetsScopedByApp", testRuleSetsScopedByApp},
		{"AppRevision", testAppRevision},
		{"TeamKeys", testTeamKeys},
		{"TeamKeyCap", testTeamKeyCap},
		{"TeamKeyRace", testTeamKeyRace},
		{"Hotpatches", testHotpatches},
		{"UploadedBlobs", testUploadedBlobs},
		{"HotpatchRace", testHotpatchRace},
		{"Rollback", testRollback},
		{"NoRelease", testNoRelease},
		{"AppWritesRace", testAppWritesRace},
		{"Offline", testOffline},
		{"OfflineRace", testOfflineRace},
		{"DeltaQueue", testDeltaQueue},
		{"DeltaBuild", testDeltaBuild},
		{"DeltaClaimRace", testDeltaClaimRace},
		{"OfflinePackageCap", testOfflinePackageCap},
		{"OfflineReleaseRace", testOfflineReleaseRace},
		{"DeltaRetry", testDeltaRetry},
		{"ConfigVersions", testConfigVersions},
		{"ConfigCanonical", testConfigCanonical},
		{"ConfigBase", testConfigBase},
		{"ConfigRestore", testConfigRestore},
		{"ConfigBounds", testConfigBounds},
		{"ConfigRace", testConfigRace},
		{"ConfigLiveCap", testConfigLiveCap},
		{"ConfigPromote", testConfigPromote},
		{"ConfigFoldRefusals", testConfigFoldRefusals},
		{"ConfigBytes", testConfigBytes},
		{"ConfigLiveBounds", testConfigLiveBounds},
		{"ConfigLive", testConfigLive},
		{"ConfigDeleteApp", testConfigDeleteApp},
		{"ConfigScopedByApp", testConfigScoped},
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

// MustCreatePackage creates an android url upgrade package of version v for app.
func MustCreatePackage(t testing.TB, s mds.Store, app *mds.App, v string) *mds.Artifact {
	t.Helper()
	p := &mds.Artifact{AppID: app.ID, Kind: mds.KindUpgrade, Platform: mds.Android, Version: v, CreatedBy: "test",
		Spec: &mds.UpgradeSpec{Build: 1, Source: mds.SourceURL, URL: "https://cdn.example.com/app-" + v + ".apk"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateArtifact(ctx(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// NewTask returns a valid draft single-reminder upgrade task for p, not stored.
func NewTask(t testing.TB, p *mds.Artifact, tg mds.Targeting) *mds.Task {
	t.Helper()
	task := &mds.Task{AppID: p.AppID, Kind: mds.KindUpgrade, ArtifactID: p.ID, Policy: &mds.UpgradePolicy{Mode: mds.ModeSingle},
		Status: mds.StatusDraft, Targeting: tg}
	if err := task.Validate(); err != nil {
		t.Fatal(err)
	}
	return task
}

// MustCreateTask creates a draft single-reminder task for p.
func MustCreateTask(t testing.TB, s mds.Store, p *mds.Artifact) *mds.Task {
	t.Helper()
	task := NewTask(t, p, mds.Targeting{})
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
