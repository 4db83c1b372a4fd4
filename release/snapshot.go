// Package release compiles live release tasks into an immutable snapshot and
// decides, from the snapshot alone, what a device is offered. It is pure: no
// storage, no transport, no clock of its own. A check is
// Snapshot.Evaluate(device, now); a write anywhere produces a new Snapshot
// that Live swaps in atomically.
package release

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/mds-dev/mds"
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
	App     *mds.App
	Task    *mds.Task
	Package *mds.Package
	// Link is what the device opens to install: the blob URL, the external
	// URL, the store page, or an itms-services link for enterprise iOS builds.
	Link string
	// PackageURL is where the package file itself is fetched; empty for
	// store links.
	PackageURL string
}

// Compile builds a snapshot from a consistent set of live data.
func Compile(set *mds.LiveSet, opts Options) (*Snapshot, error) {
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
	for _, t := range set.Tasks {
		if t.Status != mds.StatusLive {
			continue
		}
		ao, ok := byID[t.AppID]
		if !ok {
			return nil, fmt.Errorf("release: task %d belongs to unknown app %d", t.ID, t.AppID)
		}
		p, ok := pkgs[t.PackageID]
		if !ok || p.AppID != t.AppID {
			return nil, fmt.Errorf("release: task %d delivers package %d, which app %d does not have", t.ID, t.PackageID, t.AppID)
		}
		i := p.Platform.Index()
		if i < 0 {
			return nil, fmt.Errorf("release: package %d has unknown platform %q", p.ID, p.Platform)
		}
		o := newOffer(ao.app, t, p, opts)
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
	o := &Offer{App: a, Task: t, Package: p}
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

// ManifestURL is where the install manifest of enterprise package id is
// served. It names the app key, so a manifest is no easier to find than the
// check answer that links to it.
func ManifestURL(baseURL, appKey string, id int64) string {
	return baseURL + "/client/v1/manifests/" + url.PathEscape(appKey) + "/" + strconv.FormatInt(id, 10) + ".plist"
}

// Tasks returns how many live tasks the snapshot holds.
func (s *Snapshot) Tasks() int { return s.tasks }

// Apps returns how many apps the snapshot holds.
func (s *Snapshot) Apps() int { return len(s.apps) }

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

// Evaluate decides what device d is offered at time now. It fails with
// ENOTFOUND for an app key the snapshot does not know and EINVALID for a
// platform the app does not ship on. It does not allocate.
func (s *Snapshot) Evaluate(d *mds.Device, now time.Time) (Decision, error) {
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
		if !o.Package.IsNewerThan(d.AppVersion, d.Build) {
			break // offers are newest first: nothing further on is newer either
		}
		if !o.admits(d) {
			continue
		}
		dec.Offer = o
		dec.Remind = o.remind(d, now)
		return dec, nil
	}
	return dec, nil
}

// Preallocated so that rejecting a device does not allocate either.
var (
	errUnknownApp = mds.Error{Code: mds.ENOTFOUND, Message: "unknown app_key: check the key your app sends against `mds app list`"}
	errPlatform   = mds.Error{Code: mds.EINVALID, Message: "this app does not ship on the platform the device sent"}
)

// admits reports whether the offer targets d.
func (o *Offer) admits(d *mds.Device) bool {
	p := o.Package
	if p.Channel != "" && p.Channel != d.Channel {
		return false
	}
	return version.AnyContains(p.AppVersions, d.AppVersion)
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
