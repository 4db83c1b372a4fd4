// Package deliverytest builds the synthetic loads that the release and HTTP
// benchmarks run against: live sets too large to write through a database
// first, served by an in-memory mds.LiveStore.
package deliverytest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// Load is a LiveSet that serves itself as an mds.LiveStore. Whitelist
// entries are generated on demand: user-0000000, user-0000001, …
type Load struct {
	Set       *mds.LiveSet
	listSizes map[int64]int
	// ListLoads counts LoadWhitelist calls, so benchmarks can show that an
	// edit next to a whitelist does not reload it.
	ListLoads atomic.Int64

	mu       sync.Mutex
	revision int64
	changes  []mds.Change           // every Edit, oldest first
	byApp    map[int64]*mds.LiveSet // Set split by app, made on the first partial load
}

// LoadLive implements mds.LiveStore: everything from nothing, else the
// apps edited since and those asked for again.
func (l *Load) LoadLive(_ context.Context, since int64, again ...int64) (*mds.LiveSet, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since >= l.revision && len(again) == 0 {
		return &mds.LiveSet{Revision: l.revision}, nil
	}
	if since == 0 || since < l.revision && (len(l.changes) == 0 || l.changes[0].Revision > since+1) {
		set := *l.Set
		set.Revision, set.Full = l.revision, true
		return &set, nil
	}
	if l.byApp == nil {
		l.split()
	}
	apps := slices.Clone(again)
	for i := len(l.changes) - 1; i >= 0 && l.changes[i].Revision > since; i-- { // newest first
		apps = append(apps, l.changes[i].AppID)
	}
	set := &mds.LiveSet{Revision: l.revision, Changed: []int64{}}
	for _, app := range apps {
		if slices.Contains(set.Changed, app) {
			continue
		}
		set.Changed = append(set.Changed, app)
		if part := l.byApp[app]; part != nil {
			set.Apps = append(set.Apps, part.Apps...)
			set.Tasks = append(set.Tasks, part.Tasks...)
			set.Artifacts = append(set.Artifacts, part.Artifacts...)
			set.RuleSets = append(set.RuleSets, part.RuleSets...)
			set.Whitelists = append(set.Whitelists, part.Whitelists...)
			set.Deltas = append(set.Deltas, part.Deltas...)
			set.Config = append(set.Config, part.Config...)
		}
	}
	return set, nil
}

func (l *Load) split() {
	l.byApp = map[int64]*mds.LiveSet{}
	part := func(app int64) *mds.LiveSet {
		p := l.byApp[app]
		if p == nil {
			p = &mds.LiveSet{}
			l.byApp[app] = p
		}
		return p
	}
	for _, a := range l.Set.Apps {
		part(a.ID).Apps = append(part(a.ID).Apps, a)
	}
	for _, t := range l.Set.Tasks {
		part(t.AppID).Tasks = append(part(t.AppID).Tasks, t)
	}
	for _, a := range l.Set.Artifacts {
		part(a.AppID).Artifacts = append(part(a.AppID).Artifacts, a)
	}
	for _, rs := range l.Set.RuleSets {
		part(rs.AppID).RuleSets = append(part(rs.AppID).RuleSets, rs)
	}
	for _, w := range l.Set.Whitelists {
		part(w.AppID).Whitelists = append(part(w.AppID).Whitelists, w)
	}
	for _, d := range l.Set.Deltas {
		part(d.AppID).Deltas = append(part(d.AppID).Deltas, d)
	}
	for _, v := range l.Set.Config {
		part(v.AppID).Config = append(part(v.AppID).Config, v)
	}
}

// LoadWhitelist implements mds.LiveStore.
func (l *Load) LoadWhitelist(_ context.Context, id int64, fn func(string) error) (int64, error) {
	l.ListLoads.Add(1)
	for i := range l.listSizes[id] {
		if err := fn(UserID(i)); err != nil {
			return 0, err
		}
	}
	for _, w := range l.Set.Whitelists {
		if w.ID == id {
			return w.Version, nil
		}
	}
	return 0, fmt.Errorf("whitelist %d not in the load", id)
}

// Edit stands in for a write to app (say, editing one of its tasks): it
// moves the revision and records the change.
func (l *Load) Edit(app int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revision++
	l.changes = append(l.changes, mds.Change{Revision: l.revision, AppID: app})
}

// UserID is the i-th whitelisted user of a Gray load.
func UserID(i int) string { return fmt.Sprintf("user-%07d", i) }

func newLoad() *Load {
	return &Load{Set: &mds.LiveSet{}, listSizes: map[int64]int{}, revision: 1}
}

// Reference is the core service's load: apps × tasks per app, official,
// across platforms, channels and version ranges. App i's key is RefKey(i).
func Reference(apps, tasksPerApp int) *Load {
	l := newLoad()
	var id int64
	next := func() int64 { id++; return id }
	for i := range apps {
		a := &mds.App{ID: next(), Slug: fmt.Sprintf("app-%d", i), Name: fmt.Sprintf("App %d", i), Key: RefKey(i), Platforms: mds.Platforms}
		l.Set.Apps = append(l.Set.Apps, a)
		for j := range tasksPerApp {
			spec := &mds.UpgradeSpec{Build: int64(200 + j), Notes: "Bug fixes and a faster start.",
				Source: mds.SourceBlob, SHA256: fmt.Sprintf("%064x", id+1), Size: 48 << 20, Network: mds.NetworkAny,
				AppVersions: []version.Range{{Min: "1.0.0", Max: fmt.Sprintf("%d.0.0", 2+j/3)}}}
			if j%5 == 0 {
				spec.Channel = "huawei"
			}
			l.add(a, &mds.Artifact{ID: next(), AppID: a.ID, Kind: mds.KindUpgrade, Platform: mds.Platforms[j%3],
				Version: fmt.Sprintf("%d.%d.0", 2+j/3, j%3), Spec: spec}, mds.Targeting{})
		}
	}
	return l
}

// RefKey is the app key of app i in a Reference load.
func RefKey(i int) string { return fmt.Sprintf("ak_bench%04d", i) }

// GrayKey is the app key of the one app of a Gray load.
const GrayKey = "ak_gray"

// GrayRules are the five rules every task of a Gray load carries; Matching
// devices pass all of them.
var GrayRules = []mds.Rule{
	{Field: mds.FieldOSVersion, Operator: mds.OpVersionGte, Values: []string{"9"}},
	{Field: mds.FieldNetwork, Operator: mds.OpIn, Values: []string{"wifi", "4g", "5g"}},
	{Field: mds.FieldCity, Operator: mds.OpIn, Values: []string{"Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu",
		"Wuhan", "Xi'an", "Nanjing", "Tianjin", "Suzhou"}},
	{Field: mds.FieldBrand, Operator: mds.OpNotIn, Values: []string{"Nokia", "BlackBerry"}},
	{Field: "attr.tier", Operator: mds.OpIn, Values: []string{"gold", "silver"}},
}

// Gray is the gray engine's load: one android app with tasks live tasks,
// each with the five GrayRules and two gray gates, a whitelist of
// whitelist users (shared by all tasks) and a 1% rollout. Versions run
// 3.0.0 (oldest task) to 3.<tasks-1>.0 (newest).
func Gray(tasks, whitelist int) *Load {
	l := newLoad()
	a := &mds.App{ID: 1, Slug: "gray", Name: "Gray", Key: GrayKey, Platforms: []mds.Platform{mds.Android}}
	l.Set.Apps = []*mds.App{a}
	list := &mds.Whitelist{ID: 2, AppID: 1, Name: "beta users", Kind: mds.WhitelistUsers, Entries: whitelist, Version: 1}
	l.Set.Whitelists = []*mds.Whitelist{list}
	l.listSizes[list.ID] = whitelist
	for i := range tasks {
		p := &mds.Artifact{ID: int64(10 + 2*i), AppID: 1, Kind: mds.KindUpgrade, Platform: mds.Android, Version: fmt.Sprintf("3.%d.0", i),
			Spec: &mds.UpgradeSpec{Build: int64(300 + i), Notes: "Gray build.", Source: mds.SourceURL,
				URL: fmt.Sprintf("https://cdn.example.com/3.%d.apk", i), Network: mds.NetworkAny}}
		l.add(a, p, mds.Targeting{Rules: GrayRules, Whitelists: []int64{list.ID}, Rollout: &mds.Rollout{Percent: 1, Stickiness: mds.StickyDevice},
			Salt: fmt.Sprintf("salt-%d", i)})
	}
	return l
}

func (l *Load) add(a *mds.App, p *mds.Artifact, tg mds.Targeting) {
	stage := mds.StageOfficial
	if tg.HasGates() {
		stage = mds.StageGray
	}
	p.Blobs = p.Spec.Blobs()
	t := &mds.Task{ID: p.ID + 1, AppID: a.ID, Kind: mds.KindUpgrade, ArtifactID: p.ID,
		Policy: &mds.UpgradePolicy{Mode: mds.ModeSingle, RemindInterval: mds.DefaultRemindInterval},
		Status: mds.StatusLive, Stage: stage, Targeting: tg, CreatedAt: time.Unix(1_780_000_000, 0)}
	l.Set.Artifacts = append(l.Set.Artifacts, p)
	l.Set.Tasks = append(l.Set.Tasks, t)
}

// GrayDevice returns a device of a Gray load's app that passes every rule:
// user i is whitelisted when i is below the whitelist's size.
func GrayDevice(user int, appVersion string) *mds.Device {
	return &mds.Device{AppKey: GrayKey, Platform: mds.Android, AppVersion: appVersion, Build: 100,
		DeviceID: fmt.Sprintf("device-%09d", user), UserID: UserID(user), Model: "Pixel 9", Brand: "Google",
		OSVersion: "15", Network: "wifi", Region: "CN-31", City: "Shanghai", Channel: "xiaomi", Language: "zh-CN",
		Attributes: map[string]string{"tier": "gold"}}
}

// RefDevice returns device i of a Reference load of apps apps; most get an upgrade.
func RefDevice(i, apps int) *mds.Device {
	return &mds.Device{AppKey: RefKey(i % apps), Platform: mds.Platforms[i%3],
		AppVersion: refVersion(i), Build: int64(100 + i%50), DeviceID: fmt.Sprintf("device-%08d", i*7919),
		UserID: fmt.Sprintf("user-%d", i), Model: "Pixel 9", Brand: "Google", OSVersion: "15", Network: "wifi",
		Region: "CN-31", City: "Shanghai", Channel: "xiaomi", Language: "zh-CN", Attributes: map[string]string{"tier": "gold"}}
}

// Hotpatched is a Reference load whose apps also have hotpatches: per
// app and platform, a live patch of every app version RefDevice gives
// that platform, another one newer, gray to 50%, and a withdrawn one.
// HotpatchedDevice i runs, in turn, none of them, the live one, or the
// withdrawn one.
func Hotpatched(apps, tasksPerApp int) *Load {
	l := Reference(apps, tasksPerApp)
	id := int64(len(l.Set.Artifacts)*2 + len(l.Set.Apps) + 1)
	for _, a := range slices.Clone(l.Set.Apps) {
		for pi, p := range mds.Platforms {
			var targets []mds.HotpatchTarget
			for i := pi; i < 84; i += 3 {
				targets = append(targets, mds.HotpatchTarget{AppVersion: refVersion(i)})
			}
			slices.SortFunc(targets, func(x, y mds.HotpatchTarget) int { return strings.Compare(x.AppVersion, y.AppVersion) })
			targets = slices.Compact(targets)
			for n, status := range []mds.Status{mds.StatusLive, mds.StatusLive, mds.StatusRolledBack} {
				id += 2
				spec := &mds.HotpatchSpec{PatchVersion: int64(n + 1), Targets: targets, Notes: "Fixes the crash at checkout.",
					KeyID: strings.Repeat("ab", 32), SHA256: fmt.Sprintf("%064x", id), Size: 512 << 10, Files: 3, FilesSize: 1 << 20}
				art := &mds.Artifact{ID: id, AppID: a.ID, Kind: mds.KindHotpatch, Platform: p, Version: fmt.Sprint(n + 1), Spec: spec}
				art.Blobs = spec.Blobs()
				tg, stage := mds.Targeting{}, mds.StageOfficial
				if n == 1 {
					tg, stage = mds.Targeting{Rollout: &mds.Rollout{Percent: 50, Stickiness: mds.StickyDevice}, Salt: "half"}, mds.StageGray
				}
				l.Set.Artifacts = append(l.Set.Artifacts, art)
				l.Set.Tasks = append(l.Set.Tasks, &mds.Task{ID: id + 1, AppID: a.ID, Kind: mds.KindHotpatch, ArtifactID: id,
					Policy: &mds.HotpatchPolicy{}, Status: status, Stage: stage, Targeting: tg, CreatedAt: time.Unix(1_780_000_000, 0)})
			}
		}
	}
	return l
}

// HotpatchedDevice is RefDevice i running, by i, no patch, patch 1 (live)
// or patch 3 (withdrawn) of a Hotpatched load of apps apps.
func HotpatchedDevice(l *Load, i, apps int) *mds.Device {
	d := RefDevice(i, apps)
	n := i % 3
	if n == 0 {
		return d
	}
	version := int64(1 + 2*(n-1)) // 1 or 3
	for _, a := range l.Set.Artifacts {
		if a.Kind == mds.KindHotpatch && a.AppID == l.Set.Apps[i%apps].ID && a.Platform == d.Platform && a.Version == fmt.Sprint(version) {
			d.Hotpatch = &mds.AppliedPatch{ID: a.ID, PatchVersion: version}
		}
	}
	return d
}

// Offline is Reference(apps, tasksPerApp) with, per app, packages H5
// offline packages pkg00, pkg01…, each at version 1.0.0 and 1.1.0 (both
// live, to everyone), and the ready delta between them.
func Offline(apps, tasksPerApp, packages int) *Load {
	l := Reference(apps, tasksPerApp)
	id := int64(len(l.Set.Artifacts)*2 + len(l.Set.Apps) + 1)
	for _, a := range slices.Clone(l.Set.Apps) {
		for p := range packages {
			pkg := fmt.Sprintf("pkg%02d", p)
			var first int64
			for _, v := range []string{"1.0.0", "1.1.0"} {
				id += 2
				spec := &mds.OfflineSpec{Package: pkg, Type: mds.OfflineNormal, Host: "https://" + pkg + ".h5.example", Entry: "/index.html",
					Fallback: "https://cdn.example/" + pkg + "/", Network: mds.NetworkAny, KeyID: strings.Repeat("ab", 32),
					SHA256: fmt.Sprintf("%064x", id), Size: 4 << 20, CanonicalSHA256: fmt.Sprintf("%063xc", id), CanonicalSize: 20 << 20,
					Files: 400, FilesSize: 20 << 20}
				art := &mds.Artifact{ID: id, AppID: a.ID, Kind: mds.KindOffline, Version: v, Spec: spec}
				art.Blobs = spec.Blobs()
				l.Set.Artifacts = append(l.Set.Artifacts, art)
				l.Set.Tasks = append(l.Set.Tasks, &mds.Task{ID: id + 1, AppID: a.ID, Kind: mds.KindOffline, ArtifactID: id,
					Policy: &mds.OfflinePolicy{}, Status: mds.StatusLive, Stage: mds.StageOfficial, Targeting: mds.Targeting{Salt: "o"},
					CreatedAt: time.Unix(1_780_000_000, 0)})
				if first == 0 {
					first = id
					continue
				}
				l.Set.Deltas = append(l.Set.Deltas, &mds.Delta{AppID: a.ID, Package: pkg, From: first, FromVersion: "1.0.0", To: id,
					ToVersion: v, Status: mds.DeltaReady, SHA256: fmt.Sprintf("%063xd", id), Size: 200 << 10})
			}
		}
	}
	return l
}

// OfflineDevice is RefDevice i holding, by i, none of the packages of
// an Offline load, every one at 1.0.0 (it is offered the deltas), or
// every one at 1.1.0 (nothing is offered).
func OfflineDevice(i, apps, packages int) *mds.Device {
	d := RefDevice(i, apps)
	if n := i % 3; n > 0 {
		d.Offline = map[string]string{}
		for p := range packages {
			d.Offline[fmt.Sprintf("pkg%02d", p)] = []string{"1.0.0", "1.1.0"}[n-1]
		}
	}
	return d
}

// refVersion is the app version RefDevice i runs.
func refVersion(i int) string { return fmt.Sprintf("%d.%d.%d", 1+i%4, i%7, i%3) }

// Configured is a Reference load whose every app also holds keys
// configuration keys spread over namespaces, of every type, and changes
// live gray changes, each setting 5 keys of one namespace for a sticky
// share of devices from 5% to 95%, in the app's configuration cohort
// (mds.ConfigCohort), as the server releases them.
func Configured(apps, tasksPerApp, keys, namespaces, changes int) *Load {
	l := Reference(apps, tasksPerApp)
	id := int64(len(l.Set.Artifacts)*2 + len(l.Set.Apps) + 1)
	for _, a := range slices.Clone(l.Set.Apps) {
		for n := range namespaces {
			v := &mds.ConfigVersion{ID: id, AppID: a.ID, Namespace: fmt.Sprintf("ns%02d", n), Number: 7, Keys: mds.ConfigKeys{},
				CreatedAt: time.Unix(1_780_000_000, 0), CreatedBy: "bench"}
			id++
			for k := n; k < keys; k += namespaces {
				v.Keys[fmt.Sprintf("key_%04d", k)] = ConfigKey(k)
			}
			v.KeyCount = len(v.Keys)
			l.Set.Config = append(l.Set.Config, v)
		}
		for c := range changes {
			id += 2
			ns := c % namespaces
			spec := &mds.ConfigSpec{Namespace: fmt.Sprintf("ns%02d", ns), Base: 7, Set: mds.ConfigKeys{}}
			for k := range 5 {
				key := ns + (c/namespaces*5+k)*namespaces
				spec.Set[fmt.Sprintf("key_%04d", key%keys)] = ConfigKey(key + 1)
			}
			l.Set.Artifacts = append(l.Set.Artifacts, &mds.Artifact{ID: id, AppID: a.ID, Kind: mds.KindConfig, Version: "7", Spec: spec})
			l.Set.Tasks = append(l.Set.Tasks, &mds.Task{ID: id + 1, AppID: a.ID, Kind: mds.KindConfig, ArtifactID: id,
				Policy: &mds.ConfigPolicy{}, Status: mds.StatusLive, Stage: mds.StageGray,
				Targeting: mds.Targeting{Rollout: &mds.Rollout{Percent: float64(5 + 90*c/max(changes-1, 1))}, Salt: mds.ConfigCohort(a.ID)},
				CreatedAt: time.Unix(1_780_000_000, 0)})
		}
	}
	return l
}

// ConfigKey is the i-th key of a Configured load: of each type in turn,
// its value some 20 bytes of JSON.
func ConfigKey(i int) mds.ConfigKey {
	switch i % 5 {
	case 0:
		return mds.ConfigKey{Type: mds.ConfigBoolean, Value: []byte("true")}
	case 1:
		return mds.ConfigKey{Type: mds.ConfigInteger, Value: fmt.Appendf(nil, "%d", 1000+i)}
	case 2:
		return mds.ConfigKey{Type: mds.ConfigFloat, Value: fmt.Appendf(nil, "%d.25", i)}
	case 3:
		return mds.ConfigKey{Type: mds.ConfigString, Value: fmt.Appendf(nil, `"value number %d"`, i)}
	}
	return mds.ConfigKey{Type: mds.ConfigJSON, Value: fmt.Appendf(nil, `{"max":%d,"on":true}`, i)}
}
