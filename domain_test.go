package mds_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

func TestErrorCodeAndMessage(t *testing.T) {
	e := mds.Errorf(mds.ENOTFOUND, "app %q not found", "shop")
	wrapped := fmt.Errorf("loading: %w", e)
	if mds.ErrorCode(wrapped) != mds.ENOTFOUND || mds.ErrorMessage(wrapped) != `app "shop" not found` {
		t.Errorf("wrapped error: %q %q", mds.ErrorCode(wrapped), mds.ErrorMessage(wrapped))
	}
	secret := errors.New("pq: password authentication failed for user root at 10.0.0.5")
	if mds.ErrorCode(secret) != mds.EINTERNAL || strings.Contains(mds.ErrorMessage(secret), "10.0.0.5") {
		t.Errorf("internal error leaks: %q", mds.ErrorMessage(secret))
	}
	if mds.ErrorCode(nil) != "" || mds.ErrorMessage(nil) != "" {
		t.Error("nil error has a code or message")
	}
}

func TestAppValidate(t *testing.T) {
	a := &mds.App{Slug: "shop-1", Platforms: []mds.Platform{mds.IOS, mds.Android, mds.IOS}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.Name != "shop-1" || fmt.Sprint(a.Platforms) != "[android ios]" {
		t.Errorf("normalised app = %+v", a)
	}
	for _, bad := range []*mds.App{
		{Slug: "", Platforms: []mds.Platform{mds.IOS}},
		{Slug: "Shop", Platforms: []mds.Platform{mds.IOS}},
		{Slug: "-shop", Platforms: []mds.Platform{mds.IOS}},
		{Slug: "shop"},
		{Slug: "shop", Platforms: []mds.Platform{"windows"}},
		{Slug: "shop", Name: strings.Repeat("n", 201), Platforms: []mds.Platform{mds.IOS}},
	} {
		if err := bad.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("Validate(%+v) = %v, want EINVALID", bad, err)
		}
	}
	if k1, k2 := mds.NewAppKey(), mds.NewAppKey(); k1 == k2 || !strings.HasPrefix(k1, "ak_") || len(k1) != 27 {
		t.Errorf("app keys %q %q", k1, k2)
	}
}

func TestPackageValidate(t *testing.T) {
	sha := strings.Repeat("0a", 32)
	good := []*mds.Artifact{
		pkg(mds.Android, "2.0", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha}),
		pkg(mds.Android, "2.0", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://cdn.example.com/a.apk"}),
		pkg(mds.Android, "2.0", mds.UpgradeSpec{Source: mds.SourceStore, URL: "market://details?id=com.example"}),
		pkg(mds.Harmony, "2.0", mds.UpgradeSpec{Source: mds.SourceStore, URL: "appmarket://details?id=com.example"}),
		pkg(mds.IOS, "2.0", mds.UpgradeSpec{Source: mds.SourceStore, URL: "itms-apps://apps.apple.com/app/id1"}),
		pkg(mds.IOS, "2.0", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha, Enterprise: true, BundleID: "com.example.app"}),
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
		if n := p.Spec.(*mds.UpgradeSpec).Network; n != mds.NetworkAny {
			t.Errorf("network default %q", n)
		}
		if s := p.Spec.(*mds.UpgradeSpec); s.Source == mds.SourceBlob && (len(p.Blobs) != 1 || p.Blobs[0].SHA256 != s.SHA256) {
			t.Errorf("an uploaded package's blobs: %+v", p.Blobs)
		}
	}
	bad := map[string]*mds.Artifact{
		"no platform":           pkg("", "2.0", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a"}),
		"bad version":           pkg(mds.Android, "latest", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a"}),
		"negative build":        pkg(mds.Android, "2", mds.UpgradeSpec{Build: -1, Source: mds.SourceURL, URL: "https://x.example.com/a"}),
		"long notes":            pkg(mds.Android, "2", mds.UpgradeSpec{Notes: strings.Repeat("x", mds.MaxNotes+1), Source: mds.SourceURL, URL: "https://x.example.com/a"}),
		"blob without sha":      pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceBlob}),
		"blob with url":         pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha, URL: "https://x.example.com/a"}),
		"uppercase sha":         pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: strings.ToUpper(sha)}),
		"url without url":       pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL}),
		"relative url":          pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "/a.apk"}),
		"javascript url":        pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "javascript:alert(1)"}),
		"store with sha":        pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceStore, URL: "market://x", SHA256: sha}),
		"unknown source":        pkg(mds.Android, "2", mds.UpgradeSpec{Source: "ftp", URL: "https://x.example.com/a"}),
		"android enterprise":    pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha, Enterprise: true, BundleID: "com.x.y"}),
		"enterprise no bundle":  pkg(mds.IOS, "2", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha, Enterprise: true}),
		"bundle without ent.":   pkg(mds.IOS, "2", mds.UpgradeSpec{Source: mds.SourceBlob, SHA256: sha, BundleID: "com.x.y"}),
		"bad channel":           pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a", Channel: "a b"}),
		"bad network":           pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a", Network: "5g"}),
		"inverted range":        pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a", AppVersions: []version.Range{{Min: "2", Max: "1"}}}),
		"negative size":         pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceURL, URL: "https://x.example.com/a", Size: -1}),
		"silent store download": pkg(mds.Android, "2", mds.UpgradeSpec{Source: mds.SourceStore, URL: "market://x", Silent: true}),
	}
	for name, p := range bad {
		if err := p.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: Validate = %v, want EINVALID", name, err)
		}
	}
}

// pkg is an upgrade artifact with spec s.
func pkg(p mds.Platform, v string, s mds.UpgradeSpec) *mds.Artifact {
	return &mds.Artifact{Kind: mds.KindUpgrade, Platform: p, Version: v, Spec: &s}
}

func TestTaskValidateAndApply(t *testing.T) {
	upgrade := func(p mds.UpgradePolicy) mds.Task {
		return mds.Task{Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &p}
	}
	tk := upgrade(mds.UpgradePolicy{Mode: mds.ModeSingle})
	if err := tk.Validate(); err != nil || tk.Status != mds.StatusDraft || tk.UpgradePolicy().RemindInterval != mds.DefaultRemindInterval {
		t.Fatalf("defaults: %+v %v", tk, err)
	}
	live := upgrade(mds.UpgradePolicy{Mode: mds.ModeForce})
	live.Status = mds.StatusLive
	if err := live.Validate(); err != nil {
		t.Errorf("a task released as it is created: %v", err)
	}
	bad := map[string]mds.Task{
		"no mode":           upgrade(mds.UpgradePolicy{}),
		"unknown mode":      upgrade(mds.UpgradePolicy{Mode: "sometimes"}),
		"interval on force": upgrade(mds.UpgradePolicy{Mode: mds.ModeForce, RemindInterval: time.Hour}),
		"tiny interval":     upgrade(mds.UpgradePolicy{Mode: mds.ModeSingle, RemindInterval: time.Second}),
		"no package":        {Kind: mds.KindUpgrade, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}},
		"no policy":         {Kind: mds.KindUpgrade, ArtifactID: 1},
		"unknown kind":      {Kind: "hotpatch", ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}},
		"created stopped":   {Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce}, Status: mds.StatusStopped},
		"percent and ramp": {Kind: mds.KindUpgrade, ArtifactID: 1, Policy: &mds.UpgradePolicy{Mode: mds.ModeForce},
			Targeting: mds.Targeting{Rollout: &mds.Rollout{Percent: 5, Ramp: []mds.RampStep{{At: time.Now(), Percent: 10}}}}},
	}
	for name, bad := range bad {
		if err := bad.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	// An official task takes no gate; promotion drops them.
	official := upgrade(mds.UpgradePolicy{Mode: mds.ModeForce})
	if err := official.Validate(); err != nil || official.Stage != mds.StageOfficial {
		t.Fatal(err)
	}
	if err := official.SetTargeting(mds.Targeting{Rollout: &mds.Rollout{Percent: 5}}); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("a gate on an official task: %v", err)
	}
	gray := upgrade(mds.UpgradePolicy{Mode: mds.ModeForce})
	gray.Targeting = mds.Targeting{Whitelists: []int64{1}, Rollout: &mds.Rollout{Percent: 5}, RuleSets: []int64{2}}
	if err := gray.Validate(); err != nil || gray.Stage != mds.StageGray {
		t.Fatal(err)
	}
	if err := gray.Apply(mds.ActionPromote); err != nil || gray.Targeting.HasGates() || len(gray.Targeting.RuleSets) != 1 {
		t.Errorf("after promote: %+v, %v; want the rule set and no gates", gray.Targeting, err)
	}
	// Every (kind, status, action): the allowed ones lead where the
	// lifecycle says, the rest are conflicts; only hotpatches roll back.
	allowed := map[mds.Status]map[mds.Action]mds.Status{
		mds.StatusDraft:      {mds.ActionRelease: mds.StatusLive, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusDraft},
		mds.StatusLive:       {mds.ActionPause: mds.StatusPaused, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusLive},
		mds.StatusPaused:     {mds.ActionResume: mds.StatusLive, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusPaused},
		mds.StatusStopped:    {},
		mds.StatusRolledBack: {},
	}
	rollsBack := map[mds.Status]bool{mds.StatusLive: true, mds.StatusPaused: true, mds.StatusStopped: true}
	for _, kind := range mds.Kinds {
		for from, actions := range allowed {
			for _, a := range mds.Actions {
				task := &mds.Task{Kind: kind, Status: from, Stage: mds.StageGray}
				err := task.Apply(a)
				want, ok := actions[a]
				if a == mds.ActionRollback && kind == mds.KindHotpatch && rollsBack[from] {
					want, ok = mds.StatusRolledBack, true
				}
				if a == mds.ActionPromote && ok && kind == mds.KindConfig {
					// Without rules: the namespace's next version, from a
					// live task only.
					want, ok = mds.StatusStopped, from == mds.StatusLive
				}
				switch {
				case a == mds.ActionRollback && kind != mds.KindHotpatch:
					if mds.ErrorCode(err) != mds.EINVALID || task.Status != from {
						t.Errorf("%s %s --rollback--> %s, %v; only hotpatches roll back", kind, from, task.Status, err)
					}
				case ok && (err != nil || task.Status != want):
					t.Errorf("%s %s --%s--> %s, %v; want %s", kind, from, a, task.Status, err, want)
				case !ok && mds.ErrorCode(err) != mds.ECONFLICT:
					t.Errorf("%s %s --%s--> %s, %v; want a conflict", kind, from, a, task.Status, err)
				}
				if a == mds.ActionPromote && ok && task.Stage != mds.StageOfficial {
					t.Errorf("promote from %s left stage %s", from, task.Stage)
				}
			}
		}
	}
	ruled := &mds.Task{Kind: mds.KindConfig, Status: mds.StatusLive, Stage: mds.StageGray,
		Targeting: mds.Targeting{Rules: []mds.Rule{{Field: "os", Operator: "in", Values: []string{"android"}}}, Rollout: &mds.Rollout{Percent: 5}}}
	if err := ruled.Apply(mds.ActionPromote); err != nil || ruled.Status != mds.StatusLive || ruled.Stage != mds.StageOfficial {
		t.Errorf("promoting a config change with rules: %s %s, %v; want it live and official, for the devices its rules admit", ruled.Status, ruled.Stage, err)
	}
	everyone := &mds.Task{Kind: mds.KindConfig, Policy: &mds.ConfigPolicy{}, ArtifactID: 1}
	if err := everyone.Validate(); mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), "new version") {
		t.Errorf("a config task for every device: %v; want it refused for a new version", err)
	}
	promoted := &mds.Task{Status: mds.StatusLive, Stage: mds.StageOfficial}
	if err := promoted.Apply(mds.ActionPromote); mds.ErrorCode(err) != mds.ECONFLICT {
		t.Errorf("promoting an official task: %v", err)
	}
	if err := (&mds.Task{Status: mds.StatusLive}).Apply("explode"); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("unknown action: %v", err)
	}
}

func TestTokenRoles(t *testing.T) {
	shopAdmin := &mds.Token{Name: "a", Grants: []mds.Grant{{AppID: 1, App: "shop", Role: mds.RoleAdmin}, {AppID: 2, App: "blog", Role: mds.RoleViewer}}}
	if !shopAdmin.Can(1, mds.RoleReleaser) || !shopAdmin.Can(2, mds.RoleViewer) || shopAdmin.Can(2, mds.RoleReleaser) || shopAdmin.Can(3, mds.RoleViewer) {
		t.Error("Can does not follow grants and role order")
	}
	root := &mds.Token{Admin: true}
	if !root.Can(99, mds.RoleAdmin) {
		t.Error("admin token cannot act on every app")
	}
	if err := shopAdmin.MayCreate(&mds.Token{Grants: []mds.Grant{{AppID: 1, Role: mds.RoleAdmin}}}); err != nil {
		t.Errorf("app admin granting on its app: %v", err)
	}
	if err := shopAdmin.MayCreate(&mds.Token{Grants: []mds.Grant{{AppID: 2, App: "blog", Role: mds.RoleViewer}}}); mds.ErrorCode(err) != mds.EFORBIDDEN {
		t.Errorf("granting on an app it only views: %v", err)
	}
	if err := shopAdmin.MayCreate(&mds.Token{Admin: true}); mds.ErrorCode(err) != mds.EFORBIDDEN {
		t.Errorf("app admin minting an admin: %v", err)
	}
	soon := time.Now().Add(time.Hour)
	later := soon.Add(time.Hour)
	expiring := &mds.Token{Admin: true, ExpiresAt: &soon}
	if err := expiring.MayCreate(&mds.Token{Grants: []mds.Grant{{AppID: 1, Role: mds.RoleViewer}}}); mds.ErrorCode(err) != mds.EFORBIDDEN {
		t.Errorf("expiring token minting a permanent one: %v", err)
	}
	if err := expiring.MayCreate(&mds.Token{Admin: true, ExpiresAt: &later}); mds.ErrorCode(err) != mds.EFORBIDDEN {
		t.Errorf("expiring token minting a longer-lived one: %v", err)
	}
	if err := expiring.MayCreate(&mds.Token{Admin: true, ExpiresAt: &soon}); err != nil {
		t.Errorf("expiring token minting one that expires with it: %v", err)
	}
	if err := expiring.MayManage(&mds.Token{Admin: true}); err != nil {
		t.Errorf("an admin may revoke a permanent token even while expiring: %v", err)
	}
	for name, bad := range map[string]mds.Token{
		"bad name": {Name: "has space", Admin: true},
		"no roles": {Name: "x"},
		"bad role": {Name: "x", Grants: []mds.Grant{{AppID: 1, Role: "owner"}}},
		"twice":    {Name: "x", Grants: []mds.Grant{{AppID: 1, Role: mds.RoleViewer}, {AppID: 1, Role: mds.RoleAdmin}}},
	} {
		if err := bad.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	now := time.Now()
	exp := now.Add(time.Minute)
	tok := &mds.Token{ExpiresAt: &exp}
	if tok.Expired(now) || !tok.Expired(exp) {
		t.Error("expiry is off")
	}
	s1, s2 := mds.NewTokenSecret(), mds.NewTokenSecret()
	if s1 == s2 || len(s1) != 36 || mds.HashToken(s1) == mds.HashToken(s2) || len(mds.HashToken(s1)) != 64 {
		t.Errorf("secrets %q %q", s1, s2)
	}
}

func TestDeviceValidate(t *testing.T) {
	ok := mds.Device{AppKey: "ak", Platform: mds.Android, AppVersion: "1.0", DeviceID: "d", Network: "5g",
		Attributes: map[string]string{"tier": "gold"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range mds.MaxAttributes + 1 {
		many[fmt.Sprint(i)] = "x"
	}
	for name, mutate := range map[string]func(*mds.Device){
		"no key":          func(d *mds.Device) { d.AppKey = "" },
		"no platform":     func(d *mds.Device) { d.Platform = "" },
		"bad version":     func(d *mds.Device) { d.AppVersion = "x" },
		"no device":       func(d *mds.Device) { d.DeviceID = "" },
		"long model":      func(d *mds.Device) { d.Model = strings.Repeat("m", mds.MaxDeviceField+1) },
		"many attributes": func(d *mds.Device) { d.Attributes = many },
		"empty attribute": func(d *mds.Device) { d.Attributes = map[string]string{"": "x"} },
		"negative build":  func(d *mds.Device) { d.Build = -1 },
	} {
		d := ok
		mutate(&d)
		if err := d.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

// TestNormalizeNetwork: what platforms call a network maps to the names
// rules use, and an unknown name costs a device nothing but rules on it.
func TestNormalizeNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "wifi": "wifi", "WIFI": "wifi", "Wi-Fi": "wifi", "WLAN": "wifi", "LTE": "4g", "4G": "4g", "nr": "5g",
		"5g": "5g", "3g": "3g", "EDGE": "2g", "Ethernet": "ethernet", "none": "unknown", "lte-ish": "unknown",
		"carrier-pigeon-over-a-very-long-name": "unknown", "unknown": "unknown",
	} {
		if got := mds.NormalizeNetwork(in); got != want {
			t.Errorf("NormalizeNetwork(%q) = %q, want %q", in, got, want)
		}
	}
	d := mds.Device{AppKey: "ak", Platform: mds.Android, AppVersion: "1.0", DeviceID: "d", Network: "LTE"}
	if err := d.Validate(); err != nil || d.Network != "4g" {
		t.Errorf("a device on LTE: %v, network %q", err, d.Network)
	}
	if n := testing.AllocsPerRun(100, func() { mds.NormalizeNetwork("Wi-Fi") }); n != 0 {
		t.Errorf("NormalizeNetwork allocates %v times", n)
	}
}

func TestHotpatchSpecValidate(t *testing.T) {
	good := func() (*mds.Artifact, *mds.HotpatchSpec) {
		spec := &mds.HotpatchSpec{PatchVersion: 3, Targets: []mds.HotpatchTarget{{AppVersion: "2.1.0"}, {AppVersion: "2.1.1", Build: 45}},
			KeyID: strings.Repeat("ab", 32), SHA256: strings.Repeat("cd", 32), Size: 100, Files: 1}
		return &mds.Artifact{Kind: mds.KindHotpatch, Platform: mds.Android, Version: "3", Spec: spec}, spec
	}
	a, _ := good()
	if err := a.Validate(); err != nil || a.Version != "3" || len(a.Blobs) != 1 || a.Blobs[0].Role != mds.BlobHotpatch {
		t.Fatalf("a good hotpatch: %v, version %q, blobs %v", err, a.Version, a.Blobs)
	}
	for name, mutate := range map[string]func(*mds.Artifact, *mds.HotpatchSpec){
		"no platform":     func(a *mds.Artifact, _ *mds.HotpatchSpec) { a.Platform = "" },
		"patch version 0": func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.PatchVersion = 0 },
		"another version": func(a *mds.Artifact, _ *mds.HotpatchSpec) { a.Version = "4" },
		"no targets":      func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Targets = nil },
		"bad app version": func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Targets[0].AppVersion = "x" },
		"negative build":  func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Targets[1].Build = -1 },
		"target twice":    func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Targets[1] = p.Targets[0] },
		"bad key id":      func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.KeyID = "k" },
		"no file":         func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.SHA256 = "" },
		"no files":        func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Files = 0 },
		"binary notes":    func(_ *mds.Artifact, p *mds.HotpatchSpec) { p.Notes = "\x00" },
		"too many versions": func(_ *mds.Artifact, p *mds.HotpatchSpec) {
			p.Targets = make([]mds.HotpatchTarget, mds.MaxHotpatchTargets+1)
		},
	} {
		a, p := good()
		mutate(a, p)
		if err := a.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, p := good()
	p.Targets = append(p.Targets, mds.HotpatchTarget{AppVersion: "2.1.0", Build: 7})
	if got := strings.Join(p.AppVersions(), " "); got != "2.1.0 2.1.1" {
		t.Errorf("app versions %q: each once", got)
	}
	if !p.Targets[0].Matches("2.1.0", 99) || !p.Targets[1].Matches("2.1.1", 45) || p.Targets[1].Matches("2.1.1", 46) || p.Targets[0].Matches("2.1", 0) {
		t.Error("a target matches its exact version, and its build when it names one")
	}
	d := mds.Device{AppKey: "k", Platform: mds.Android, AppVersion: "2.1.0", DeviceID: "d", Hotpatch: &mds.AppliedPatch{ID: 1}}
	if err := d.Validate(); mds.ErrorCode(err) != mds.EINVALID {
		t.Errorf("an applied patch without its version: %v", err)
	}
}

func TestOfflineSpecValidate(t *testing.T) {
	good := func() (*mds.Artifact, *mds.OfflineSpec) {
		spec := &mds.OfflineSpec{Package: "shop-home", Type: mds.OfflineNormal, Host: "https://h5.shop.example", Entry: "/index.html",
			Fallback: "https://cdn.shop.example/h5/", Requires: []string{"common", "fonts"}, AppVersions: []version.Range{{Min: "2.0"}},
			KeyID: strings.Repeat("ab", 32), SHA256: strings.Repeat("cd", 32), Size: 100, CanonicalSHA256: strings.Repeat("ef", 32),
			CanonicalSize: 300, Files: 3, FilesSize: 250}
		return &mds.Artifact{Kind: mds.KindOffline, Version: "1.4.0", Spec: spec}, spec
	}
	a, p := good()
	if err := a.Validate(); err != nil || len(a.Blobs) != 1 || a.Blobs[0].Role != mds.BlobOffline || p.Network != mds.NetworkAny {
		t.Fatalf("a good offline package: %v, blobs %v, network %q", err, a.Blobs, p.Network)
	}
	for name, mutate := range map[string]func(*mds.Artifact, *mds.OfflineSpec){
		"a platform":          func(a *mds.Artifact, _ *mds.OfflineSpec) { a.Platform = mds.Android },
		"bad version":         func(a *mds.Artifact, _ *mds.OfflineSpec) { a.Version = "x" },
		"upper-case id":       func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Package = "Shop" },
		"id of a dot":         func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Package = ".x" },
		"long id":             func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Package = strings.Repeat("a", 65) },
		"no type":             func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Type = "" },
		"host with a path":    func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example/app" },
		"host with a slash":   func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example/" },
		"host of ftp":         func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "ftp://h5.shop.example" },
		"upper-case host":     func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://H5.shop.example" },
		"host with a query":   func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example?x" },
		"host with a user":    func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://me@h5.shop.example" },
		"default port":        func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example:443" },
		"empty port":          func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example:" },
		"padded port":         func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Host = "https://h5.shop.example:0443" },
		"relative entry":      func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Entry = "index.html" },
		"entry with a query":  func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Entry = "/index.html?x=1" },
		"relative fallback":   func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Fallback = "/h5/" },
		"fallback with query": func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Fallback = "https://cdn.shop.example/h5/?v=1" },
		"requires itself":     func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Requires = []string{"shop-home"} },
		"requires unsorted":   func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Requires = []string{"fonts", "common"} },
		"requires twice":      func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Requires = []string{"common", "common"} },
		"a global requiring":  func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Type = mds.OfflineGlobal },
		"bad range":           func(_ *mds.Artifact, p *mds.OfflineSpec) { p.AppVersions = []version.Range{{Min: "x"}} },
		"bad network":         func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Network = "5g" },
		"bad key id":          func(_ *mds.Artifact, p *mds.OfflineSpec) { p.KeyID = "k" },
		"no file":             func(_ *mds.Artifact, p *mds.OfflineSpec) { p.SHA256 = "" },
		"no canonical form":   func(_ *mds.Artifact, p *mds.OfflineSpec) { p.CanonicalSize = 0 },
		"no files":            func(_ *mds.Artifact, p *mds.OfflineSpec) { p.Files = 0 },
	} {
		a, p := good()
		mutate(a, p)
		if err := a.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, host := range []string{"http://h5.shop.example:8080", "https://[::1]:8443", "https://10.0.0.1"} {
		a, p := good()
		p.Host = host
		if err := a.Validate(); err != nil {
			t.Errorf("host %s: %v", host, err)
		}
	}
	_, p = good()
	if !p.WorksWith("2.0") || !p.WorksWith("10.1") || p.WorksWith("1.9.9") {
		t.Error("a package works with the app versions in its ranges")
	}
	p.AppVersions = nil
	if !p.WorksWith("0.1") {
		t.Error("a package without ranges works with every app version")
	}
}

func TestDeviceOffline(t *testing.T) {
	d := mds.Device{AppKey: "ak", Platform: mds.Android, AppVersion: "1.0", DeviceID: "d", Offline: map[string]string{"shop-home": "1.4.0", "common": "2"}}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range mds.MaxOfflineHeld + 1 {
		many[fmt.Sprint("p", i)] = "1.0"
	}
	for name, held := range map[string]map[string]string{
		"too many":      many,
		"bad id":        {"Shop": "1.0"},
		"empty id":      {"": "1.0"},
		"bad version":   {"shop": "1..0"},
		"empty version": {"shop": ""},
	} {
		d.Offline = held
		if err := d.Validate(); mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), "offline") {
			t.Errorf("%s: %v, want EINVALID naming offline", name, err)
		}
	}
	d.Offline = map[string]string{"shop-home": "1.4.0", "common": "2.0"}
	if n := testing.AllocsPerRun(100, func() { d.Validate() }); n != 0 {
		t.Errorf("validating what a device holds allocates %v times", n)
	}
}
