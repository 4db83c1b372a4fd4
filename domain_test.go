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
	good := []mds.Package{
		{Platform: mds.Android, Version: "2.0", Source: mds.SourceBlob, SHA256: sha},
		{Platform: mds.Android, Version: "2.0", Source: mds.SourceURL, URL: "https://cdn.example.com/a.apk"},
		{Platform: mds.Android, Version: "2.0", Source: mds.SourceStore, URL: "market://details?id=com.example"},
		{Platform: mds.Harmony, Version: "2.0", Source: mds.SourceStore, URL: "appmarket://details?id=com.example"},
		{Platform: mds.IOS, Version: "2.0", Source: mds.SourceStore, URL: "itms-apps://apps.apple.com/app/id1"},
		{Platform: mds.IOS, Version: "2.0", Source: mds.SourceBlob, SHA256: sha, Enterprise: true, BundleID: "com.example.app"},
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
		if p.Network != mds.NetworkAny {
			t.Errorf("network default %q", p.Network)
		}
	}
	bad := map[string]mds.Package{
		"no platform":           {Version: "2.0", Source: mds.SourceURL, URL: "https://x.example.com/a"},
		"bad version":           {Platform: mds.Android, Version: "latest", Source: mds.SourceURL, URL: "https://x.example.com/a"},
		"negative build":        {Platform: mds.Android, Version: "2", Build: -1, Source: mds.SourceURL, URL: "https://x.example.com/a"},
		"long notes":            {Platform: mds.Android, Version: "2", Notes: strings.Repeat("x", mds.MaxNotes+1), Source: mds.SourceURL, URL: "https://x.example.com/a"},
		"blob without sha":      {Platform: mds.Android, Version: "2", Source: mds.SourceBlob},
		"blob with url":         {Platform: mds.Android, Version: "2", Source: mds.SourceBlob, SHA256: sha, URL: "https://x.example.com/a"},
		"uppercase sha":         {Platform: mds.Android, Version: "2", Source: mds.SourceBlob, SHA256: strings.ToUpper(sha)},
		"url without url":       {Platform: mds.Android, Version: "2", Source: mds.SourceURL},
		"relative url":          {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "/a.apk"},
		"javascript url":        {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "javascript:alert(1)"},
		"store with sha":        {Platform: mds.Android, Version: "2", Source: mds.SourceStore, URL: "market://x", SHA256: sha},
		"unknown source":        {Platform: mds.Android, Version: "2", Source: "ftp", URL: "https://x.example.com/a"},
		"android enterprise":    {Platform: mds.Android, Version: "2", Source: mds.SourceBlob, SHA256: sha, Enterprise: true, BundleID: "com.x.y"},
		"enterprise no bundle":  {Platform: mds.IOS, Version: "2", Source: mds.SourceBlob, SHA256: sha, Enterprise: true},
		"bundle without ent.":   {Platform: mds.IOS, Version: "2", Source: mds.SourceBlob, SHA256: sha, BundleID: "com.x.y"},
		"bad channel":           {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "https://x.example.com/a", Channel: "a b"},
		"bad network":           {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "https://x.example.com/a", Network: "5g"},
		"inverted range":        {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "https://x.example.com/a", AppVersions: []version.Range{{Min: "2", Max: "1"}}},
		"negative size":         {Platform: mds.Android, Version: "2", Source: mds.SourceURL, URL: "https://x.example.com/a", Size: -1},
		"silent store download": {Platform: mds.Android, Version: "2", Source: mds.SourceStore, URL: "market://x", Silent: true},
	}
	for name, p := range bad {
		if err := p.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: Validate = %v, want EINVALID", name, err)
		}
	}
}

func TestTaskValidateAndApply(t *testing.T) {
	tk := &mds.Task{PackageID: 1, Mode: mds.ModeSingle}
	if err := tk.Validate(); err != nil || tk.Kind != mds.KindUpgrade || tk.RemindInterval != mds.DefaultRemindInterval {
		t.Fatalf("defaults: %+v %v", tk, err)
	}
	for name, bad := range map[string]mds.Task{
		"no mode":           {PackageID: 1},
		"unknown mode":      {PackageID: 1, Mode: "sometimes"},
		"no package":        {Mode: mds.ModeForce},
		"interval on force": {PackageID: 1, Mode: mds.ModeForce, RemindInterval: time.Hour},
		"tiny interval":     {PackageID: 1, Mode: mds.ModeSingle, RemindInterval: time.Second},
		"unknown kind":      {PackageID: 1, Mode: mds.ModeForce, Kind: "hotpatch"},
	} {
		if err := bad.Validate(); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	// Every (status, action) pair: the allowed ones lead where the lifecycle
	// says, the rest are conflicts.
	allowed := map[mds.Status]map[mds.Action]mds.Status{
		mds.StatusDraft:   {mds.ActionRelease: mds.StatusLive, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusDraft},
		mds.StatusLive:    {mds.ActionPause: mds.StatusPaused, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusLive},
		mds.StatusPaused:  {mds.ActionResume: mds.StatusLive, mds.ActionStop: mds.StatusStopped, mds.ActionPromote: mds.StatusPaused},
		mds.StatusStopped: {},
	}
	for from, actions := range allowed {
		for _, a := range mds.Actions {
			task := &mds.Task{Status: from, Stage: mds.StageGray}
			err := task.Apply(a)
			want, ok := actions[a]
			switch {
			case ok && (err != nil || task.Status != want):
				t.Errorf("%s --%s--> %s, %v; want %s", from, a, task.Status, err, want)
			case !ok && mds.ErrorCode(err) != mds.ECONFLICT:
				t.Errorf("%s --%s--> %s, %v; want a conflict", from, a, task.Status, err)
			}
			if a == mds.ActionPromote && ok && task.Stage != mds.StageOfficial {
				t.Errorf("promote from %s left stage %s", from, task.Stage)
			}
		}
	}
	official := &mds.Task{Status: mds.StatusLive, Stage: mds.StageOfficial}
	if err := official.Apply(mds.ActionPromote); mds.ErrorCode(err) != mds.ECONFLICT {
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
		"bad network":     func(d *mds.Device) { d.Network = "lte-ish" },
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
