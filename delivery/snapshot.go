// Package delivery decides what devices are offered. It compiles every live
// release task, of every kind, into an immutable Snapshot, and answers a
// check from it alone: Snapshot.Evaluate(input, admitter) returns a
// decision per kind. No storage, no transport, no clock of its own, and no
// URLs: the transport turns decisions into answers. Targeting is the gray
// engine's. Live swaps in a new Snapshot when the store moves. The package
// also keeps the two pieces of per-node state a check may touch: window
// admissions and the sample of recent devices that audience previews count.
//
// Each kind brings a selector: how it picks, among its live tasks of an
// app, what one device gets (upgrade.go). The snapshot dispatches tasks to
// their kind's selector when compiling and asks each selector when
// evaluating.
package delivery

import (
	"fmt"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Snapshot is every live task of every app, compiled for evaluation. It is
// never modified after Compile returns, so any number of goroutines may read
// it without locks.
type Snapshot struct {
	Revision int64
	// Problems lists the live tasks left out because they could not be
	// compiled; Live logs them.
	Problems []error
	apps     map[string]*appState // by every key its devices may send
	blobs    map[string]struct{}  // sha256 of every blob a live task delivers
	offers   []*Offer
}

// appState is one app's part of a snapshot: a selector per kind.
type appState struct {
	app     *mds.App
	upgrade upgrades
}

// Offer is one live task compiled with what it delivers.
type Offer struct {
	// Index numbers the offers of a snapshot densely from 0, so that a
	// transport can keep what it derives from an offer (an encoded answer)
	// in a slice instead of a map.
	Index    int
	App      *mds.App
	Task     *mds.Task
	Artifact *mds.Artifact // nil for kinds without artifacts
	audience *gray.Audience
}

// Compile builds a snapshot from a consistent set of live data. lists holds
// the compiled whitelists the tasks refer to. Tasks that do not compile are
// left out and listed in Problems: one bad row must not freeze every app on
// the last good snapshot.
func Compile(set *mds.LiveSet, lists map[int64]*gray.List) (*Snapshot, error) {
	s := &Snapshot{
		Revision: set.Revision,
		apps:     make(map[string]*appState, len(set.Apps)),
		blobs:    map[string]struct{}{},
	}
	byID := make(map[int64]*appState, len(set.Apps))
	for _, a := range set.Apps {
		as := &appState{app: a}
		s.apps[a.Key] = as
		if a.PreviousKey != "" {
			s.apps[a.PreviousKey] = as
		}
		byID[a.ID] = as
	}
	artifacts := make(map[int64]*mds.Artifact, len(set.Artifacts))
	for _, a := range set.Artifacts {
		artifacts[a.ID] = a
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
		skip := func(format string, args ...any) {
			s.Problems = append(s.Problems, fmt.Errorf("delivery: task %d skipped: "+format, append([]any{t.ID}, args...)...))
		}
		as, ok := byID[t.AppID]
		if !ok {
			skip("it belongs to unknown app %d", t.AppID)
			continue
		}
		o := &Offer{App: as.app, Task: t}
		if t.ArtifactID != 0 {
			a, ok := artifacts[t.ArtifactID]
			if !ok || a.AppID != t.AppID || a.Kind != t.Kind {
				skip("it delivers %s package %d, which app %d does not have", t.Kind, t.ArtifactID, t.AppID)
				continue
			}
			o.Artifact = a
		}
		cat, ok := catalogs[t.AppID]
		if !ok {
			cat = gray.NewCatalog(ruleSets, lists)
			catalogs[t.AppID] = cat
		}
		var err error
		if o.audience, err = cat.Compile(t); err != nil {
			skip("%v", err)
			continue
		}
		switch t.Kind {
		case mds.KindUpgrade:
			err = as.upgrade.add(o)
		default:
			err = fmt.Errorf("kind %q has no selector", t.Kind)
		}
		if err != nil {
			skip("%v", err)
			continue
		}
		o.Index = len(s.offers)
		s.offers = append(s.offers, o)
		if o.Artifact != nil {
			for _, b := range o.Artifact.Blobs {
				s.blobs[b.SHA256] = struct{}{}
			}
		}
	}
	for _, as := range byID {
		as.upgrade.finish()
	}
	return s, nil
}

// Offers returns how many offers, one per live task, the snapshot holds;
// Offer.Index is below it.
func (s *Snapshot) Offers() int { return len(s.offers) }

// Serves reports whether a live task delivers the blob sum. Devices can
// download only those: an upload nobody released, or a release that was
// stopped, is not reachable by its digest.
func (s *Snapshot) Serves(sum string) bool {
	_, ok := s.blobs[sum]
	return ok
}

// Decision is what a check answers, per kind.
type Decision struct {
	App     *mds.App
	Upgrade UpgradeChoice
}

// Evaluate decides what the input's device is offered of every kind. It
// fails with ENOTFOUND for an app key the snapshot does not know and
// EINVALID for a platform the app does not ship on. It does not allocate;
// the only state it touches is adm's, and only for a device nothing but an
// open capped window would admit.
func (s *Snapshot) Evaluate(in *gray.Input, adm gray.Admitter) (Decision, error) {
	d := in.Device
	as, ok := s.apps[d.AppKey]
	if !ok {
		return Decision{}, &errUnknownApp
	}
	dec := Decision{App: as.app}
	if !as.app.HasPlatform(d.Platform) {
		return dec, &errPlatform
	}
	dec.Upgrade = as.upgrade.decide(in, adm)
	return dec, nil
}

// Preallocated so that rejecting a device does not allocate either.
var (
	errUnknownApp = mds.Error{Code: mds.ENOTFOUND, Message: "unknown app_key: check the key your app sends against `mds app list`"}
	errPlatform   = mds.Error{Code: mds.EINVALID, Message: "this app does not ship on the platform the device sent"}
)

// Explanation says what one live task decided for a device, and why.
type Explanation struct {
	Kind       mds.Kind    `json:"kind"`
	TaskID     int64       `json:"task_id"`
	ArtifactID int64       `json:"package_id,omitempty"`
	Version    string      `json:"version,omitempty"`
	Stage      mds.Stage   `json:"stage"`
	Matched    bool        `json:"matched"`
	Chosen     bool        `json:"chosen"` // what the device's check would get
	Steps      []gray.Step `json:"steps"`
}

// Explain evaluates every live task of the device's app, admitting no one,
// and says for each whether it matched and what decided, kind by kind in
// the order each kind's selector tries them.
func (s *Snapshot) Explain(in *gray.Input, adm gray.Admitter) ([]Explanation, error) {
	as, ok := s.apps[in.Device.AppKey]
	if !ok {
		return nil, &errUnknownApp
	}
	out := []Explanation{}
	out = append(out, as.upgrade.explain(in, adm)...)
	return out, nil
}

// explanation starts the explanation of offer o.
func (o *Offer) explanation() Explanation {
	e := Explanation{Kind: o.Task.Kind, TaskID: o.Task.ID, Stage: o.Task.Stage}
	if o.Artifact != nil {
		e.ArtifactID, e.Version = o.Artifact.ID, o.Artifact.Version
	}
	return e
}
