// Package release compiles live release tasks into an immutable snapshot and
// decides, from the snapshot alone, what a device is offered. A check is
// Snapshot.Evaluate(input, admitter): no storage, no transport, no clock of
// its own; targeting is the gray engine's. A write anywhere produces a new
// Snapshot that Live swaps in atomically. The package also keeps the two
// pieces of per-node state a check may touch: window admissions and the
// sample of recent devices that audience previews count.
package release

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/version"
)

// Options are the deployment facts a snapshot needs to build links.
type Options struct {
	// BaseURL is the public URL devices reach this service at, without a
	// trailing slash, e.g. "https://mds.example.com". iOS requires https for
	// enterprise install manifests.
	BaseURL string
}

// Snapshot is every live task of every app, compiled for evaluation. It is
// never modified after Compile returns, so any number of goroutines may read
// it without locks.
type Snapshot struct {
	Revision int64
	// Problems lists the live tasks left out because they could not be
	// compiled; Live logs them.
	Problems []error
	apps     map[string]*appOffers // by app key
	blobs    map[string]struct{}   // sha256 of every blob a live task delivers
	tasks    int
}

type appOffers struct {
	app *mds.App
	// byPlatform[p.Index()] lists offers in priority order: newest version
	// first, then highest build, then newest task.
	byPlatform [3][]*Offer
	// enterprise holds the live enterprise iOS offers by package ID, for the
	// install manifests that their itms-services links point at.
	enterprise map[int64]*Offer
}

// Offer is one live task compiled with its package: what a targeted device
// is offered.
type Offer struct {
	App       *mds.App
	Task      *mds.Task
	Package   *mds.Package
	Targeting *gray.Targeting
	version   version.Key
	ranges    []version.KeyRange // the package's installed-version ranges
	memo      [2]atomic.Pointer[any]
	// Link is what the device opens to install: the blob URL, the external
	// URL, the store page, or an itms-services link for enterprise iOS builds.
	Link string
	// PackageURL is where the package file itself is fetched; empty for
	// store links.
	PackageURL string
}

// Compile builds a snapshot from a consistent set of live data. lists holds
// the compiled whitelists the tasks refer to. Tasks that do not compile are
// left out and listed in Problems.
func Compile(set *mds.LiveSet, opts Options, lists map[int64]*gray.List) (*Snapshot, error) {
	s := &Snapshot{
		Revision: set.Revision,
		apps:     make(map[string]*appOffers, len(set.Apps)),
		blobs:    map[string]struct{}{},
	}
	byID := make(map[int64]*appOffers, len(set.Apps))
	for _, a := range set.Apps {
		ao := &appOffers{app: a, enterprise: map[int64]*Offer{}}
		s.apps[a.Key] = ao
		byID[a.ID] = ao
	}
	pkgs := make(map[int64]*mds.Package, len(set.Packages))
	for _, p := range set.Packages {
		pkgs[p.ID] = p
	}
	ruleSets := make(map[int64]*mds.RuleSet, len(set.RuleSets))
	for _, rs := range set.RuleSets {
		ruleSets[rs.ID] = rs
	}
	catalogs := map[int64]*gray.Catalog{} // per app: shared rules are remembered per check, and a check is of one app
	for _, t := range set.Tasks {
		if t.Status != mds.StatusLive {
			continue
		}
		// A task that cannot be compiled reaches no one, and the rest of
		// the deployment keeps working: one bad row must not freeze every
		// app on the last good snapshot.
		skip := func(format string, args ...any) {
			s.Problems = append(s.Problems, fmt.Errorf("release: task %d skipped: "+format, append([]any{t.ID}, args...)...))
		}
		ao, ok := byID[t.AppID]
		if !ok {
			skip("it belongs to unknown app %d", t.AppID)
			continue
		}
		p, ok := pkgs[t.PackageID]
		if !ok || p.AppID != t.AppID {
			skip("it delivers package %d, which app %d does not have", t.PackageID, t.AppID)
			continue
		}
		i := p.Platform.Index()
		if i < 0 {
			skip("package %d has unknown platform %q", p.ID, p.Platform)
			continue
		}
		cat, ok := catalogs[t.AppID]
		if !ok {
			cat = gray.NewCatalog(ruleSets, lists)
			catalogs[t.AppID] = cat
		}
		tg, err := cat.Compile(t)
		if err != nil {
			skip("%v", err)
			continue
		}
		o := newOffer(ao.app, t, p, opts)
		o.Targeting = tg
		ao.byPlatform[i] = append(ao.byPlatform[i], o)
		if p.Enterprise {
			ao.enterprise[p.ID] = o
		}
		if p.Source == mds.SourceBlob {
			s.blobs[p.SHA256] = struct{}{}
		}
		s.tasks++
	}
	for _, ao := range s.apps {
		for _, offers := range ao.byPlatform {
			slices.SortFunc(offers, func(a, b *Offer) int {
				if c := version.Compare(b.Package.Version, a.Package.Version); c != 0 {
					return c
				}
				if c := cmp.Compare(b.Package.Build, a.Package.Build); c != 0 {
					return c
				}
				return cmp.Compare(b.Task.ID, a.Task.ID)
			})
		}
	}
	return s, nil
}

func newOffer(a *mds.App, t *mds.Task, p *mds.Package, opts Options) *Offer {
	o := &Offer{App: a, Task: t, Package: p, version: version.NewKey(p.Version)}
	for _, r := range p.AppVersions {
		o.ranges = append(o.ranges, r.Keys())
	}
	switch p.Source {
	case mds.SourceBlob:
		o.PackageURL = opts.BaseURL + "/client/v1/blobs/" + p.SHA256
	case mds.SourceURL:
		o.PackageURL = p.URL
	}
	o.Link = o.PackageURL
	switch {
	case p.Source == mds.SourceStore:
		o.Link = p.URL
	case p.Enterprise:
		o.Link = "itms-services://?action=download-manifest&url=" + url.QueryEscape(ManifestURL(opts.BaseURL, a.Key, p.ID))
	}
	return o
}

// Memo returns what build returns for the offer and remind, building it
// once: the transport encodes each offer's two answers (reminding or not)
// once per snapshot instead of once per check. Racing first calls may both
// build; one result wins, and both are equal.
func (o *Offer) Memo(remind bool, build func() any) any {
	i := 0
	if remind {
		i = 1
	}
	if v := o.memo[i].Load(); v != nil {
		return *v
	}
	v := build()
	o.memo[i].CompareAndSwap(nil, &v)
	return *o.memo[i].Load()
}

// ManifestURL is where the install manifest of enterprise package id is
// served. It names the app key, so a manifest is no easier to find than the
// check answer that links to it.
func ManifestURL(baseURL, appKey string, id int64) string {
	return baseURL + "/client/v1/manifests/" + url.PathEscape(appKey) + "/" + strconv.FormatInt(id, 10) + ".plist"
}

// Tasks returns how many live tasks the snapshot holds.
func (s *Snapshot) Tasks() int { return s.tasks }

// Serves reports whether a live task delivers the blob sum. Devices can
// download only those: an upload nobody released, or a release that was
// stopped, is not reachable by its digest.
func (s *Snapshot) Serves(sum string) bool {
	_, ok := s.blobs[sum]
	return ok
}

// Enterprise returns the live offer of app appKey's enterprise iOS package
// id, if any. Only packages a live task delivers have a manifest: stopping
// the task withdraws the over-the-air install too.
func (s *Snapshot) Enterprise(appKey string, id int64) (*Offer, bool) {
	ao, ok := s.apps[appKey]
	if !ok {
		return nil, false
	}
	o, ok := ao.enterprise[id]
	return o, ok
}

// Decision is what a check answers.
type Decision struct {
	App   *mds.App
	Offer *Offer // nil when no upgrade applies
	// Remind says whether the device should prompt its user now. Forced and
	// multiple-reminder offers always remind; single-reminder offers remind
	// once per interval.
	Remind bool
}

// reminderSkew tolerates device clocks running somewhat ahead of ours.
const reminderSkew = 5 * time.Minute

// Evaluate decides what the input's device is offered. It fails with
// ENOTFOUND for an app key the snapshot does not know and EINVALID for a
// platform the app does not ship on. It does not allocate; the only state
// it touches is adm's, and only for a device nothing but an open capped
// window would admit.
func (s *Snapshot) Evaluate(in *gray.Input, adm gray.Admitter) (Decision, error) {
	d := in.Device
	ao, ok := s.apps[d.AppKey]
	if !ok {
		return Decision{}, &errUnknownApp
	}
	dec := Decision{App: ao.app}
	i := d.Platform.Index()
	if i < 0 || !ao.app.HasPlatform(d.Platform) {
		return dec, &errPlatform
	}
	for _, o := range ao.byPlatform[i] {
		if !o.newerThan(in) {
			break // offers are newest first: nothing further on is newer either
		}
		if !o.packageAdmits(in) || !o.Targeting.Decide(in, adm) {
			continue
		}
		dec.Offer = o
		dec.Remind = o.remind(d, in.Now)
		return dec, nil
	}
	return dec, nil
}

// Preallocated so that rejecting a device does not allocate either.
var (
	errUnknownApp = mds.Error{Code: mds.ENOTFOUND, Message: "unknown app_key: check the key your app sends against `mds app list`"}
	errPlatform   = mds.Error{Code: mds.EINVALID, Message: "this app does not ship on the platform the device sent"}
)

// newerThan reports whether the offer's package is newer than the device's
// app: a newer version, or the same version with a higher build.
func (o *Offer) newerThan(in *gray.Input) bool {
	switch c := version.CompareKeys(o.version, in.AppVersion()); {
	case c > 0:
		return true
	case c < 0:
		return false
	}
	return in.Device.Build > 0 && o.Package.Build > in.Device.Build
}

// packageAdmits applies what the package itself says: channel and
// installed-version ranges.
func (o *Offer) packageAdmits(in *gray.Input) bool {
	if ch := o.Package.Channel; ch != "" && ch != in.Device.Channel {
		return false
	}
	if len(o.ranges) == 0 {
		return true
	}
	v := in.AppVersion()
	for _, r := range o.ranges {
		if r.Contains(v) {
			return true
		}
	}
	return false
}

func (o *Offer) remind(d *mds.Device, now time.Time) bool {
	if o.Task.Mode != mds.ModeSingle {
		return true
	}
	last := d.LastReminded
	if last == nil || last.TaskID != o.Task.ID {
		return true
	}
	recent := last.At.After(now.Add(-o.Task.RemindInterval)) && !last.At.After(now.Add(reminderSkew))
	return !recent
}

// Explanation says what one live task decided for a device, and why.
type Explanation struct {
	TaskID    int64       `json:"task_id"`
	PackageID int64       `json:"package_id"`
	Version   string      `json:"version"`
	Stage     mds.Stage   `json:"stage"`
	Matched   bool        `json:"matched"`
	Chosen    bool        `json:"chosen"` // the task the device's check would get
	Steps     []gray.Step `json:"steps"`
}

// Explain evaluates every live task of the device's app, in priority
// order, admitting no one, and says for each whether it matched and what
// decided. The first matching task is the one a check would choose.
func (s *Snapshot) Explain(in *gray.Input, adm gray.Admitter) ([]Explanation, error) {
	d := in.Device
	ao, ok := s.apps[d.AppKey]
	if !ok {
		return nil, &errUnknownApp
	}
	out := []Explanation{}
	chosen := false
	for i, offers := range ao.byPlatform {
		for _, o := range offers {
			e := Explanation{TaskID: o.Task.ID, PackageID: o.Package.ID, Version: o.Package.Version, Stage: o.Task.Stage}
			step := func(detail string, ok bool) {
				e.Steps = append(e.Steps, gray.Step{What: "package", Detail: detail, Passed: ok})
			}
			p := o.Package
			switch {
			case mds.Platforms[i] != d.Platform:
				step(fmt.Sprintf("package is for %s; the device is %s", p.Platform, d.Platform), false)
			case !o.newerThan(in):
				step(fmt.Sprintf("package %s (build %d) is not newer than the device's %s (build %d)", p.Version, p.Build, d.AppVersion, d.Build), false)
			case !o.packageAdmits(in):
				step(fmt.Sprintf("package admits channel %q and installed versions %v; the device is on channel %q, version %s",
					p.Channel, p.AppVersions, d.Channel, d.AppVersion), false)
			default:
				step(fmt.Sprintf("package %s is newer than %s and admits the device", p.Version, d.AppVersion), true)
				var steps []gray.Step
				e.Matched, steps = o.Targeting.Explain(in, adm)
				e.Steps = append(e.Steps, steps...)
			}
			if e.Matched && !chosen {
				e.Chosen, chosen = true, true
			}
			out = append(out, e)
		}
	}
	return out, nil
}
