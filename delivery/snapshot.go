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
	"slices"
	"sync/atomic"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Snapshot is every live task of every app, compiled for evaluation. It is
// never modified after it is built, so any number of goroutines may read it
// without locks. Each app's part is compiled on its own and shared with the
// next snapshot while the app does not change: a write to one app costs
// compiling that app, not the deployment.
type Snapshot struct {
	Revision int64
	// Problems lists the live tasks left out because they could not be
	// compiled, of the apps this snapshot compiled; Live logs them.
	Problems []error
	apps     index[string, *appState] // by every key its devices may send
	byID     index[int64, *appState]
	offers   int
}

// appState is one app's part of a snapshot: a selector per kind, and what
// the next compile of the app starts from.
type appState struct {
	app      *mds.App
	upgrade  upgrades
	hotpatch hotpatches
	offline  offlines
	config   configs
	offers   int
	// memo is the transport's, as Offer.Memo is, for what it derives from
	// the app's part as a whole (its signed answers).
	memo  atomic.Value
	blobs []string             // distinct sha256 its live tasks deliver
	lists map[int64]*gray.List // the compiled whitelists its live tasks use
}

// Offer is one live task compiled with what it delivers.
type Offer struct {
	App      *mds.App
	Task     *mds.Task
	Artifact *mds.Artifact // nil for kinds without artifacts
	audience *gray.Audience
	// Memo is the transport's, to keep what it derives from the offer (its
	// encoded answer). An offer is carried into later snapshots while its
	// app does not change, and what Memo holds with it.
	Memo atomic.Value
}

// Compile builds a snapshot from a full set of live data (set.Full, or a
// set nothing came before). lists holds the compiled whitelists the tasks
// refer to. Tasks that do not compile are left out and listed in
// Problems: one bad row must not freeze every app on the last good
// snapshot.
func Compile(set *mds.LiveSet, lists map[int64]*gray.List) *Snapshot {
	return (*Snapshot)(nil).Apply(set, lists)
}

// Apply returns the snapshot that follows s given set, read after s's
// revision: the apps set holds compiled afresh, those it names as changed
// but lacks dropped, and every other app's part shared with s. A full set,
// or a nil s, starts from nothing.
func (s *Snapshot) Apply(set *mds.LiveSet, lists map[int64]*gray.List) *Snapshot {
	n, _, _ := s.apply(set, lists)
	return n
}

// apply is Apply that also returns the app parts it added and those of s
// it dropped.
func (s *Snapshot) apply(set *mds.LiveSet, lists map[int64]*gray.List) (n *Snapshot, added, dropped []*appState) {
	n = &Snapshot{Revision: set.Revision}
	if s != nil && set.Full {
		for _, as := range s.byID.all() {
			dropped = append(dropped, as)
		}
	}
	if s != nil && !set.Full {
		n.apps, n.byID, n.offers = s.apps, s.byID, s.offers
	}
	e := &snapshotEditor{n: n, apps: indexEditor[string, *appState]{x: &n.apps}, byID: indexEditor[int64, *appState]{x: &n.byID}}
	if s != nil && !set.Full {
		// Every app set holds replaces its old part, whether or not
		// Changed names it, so no app is ever counted twice.
		ids := slices.Clone(set.Changed)
		for _, a := range set.Apps {
			ids = append(ids, a.ID)
		}
		for _, id := range ids {
			if as, ok := n.byID.get(id); ok {
				e.remove(as)
				dropped = append(dropped, as)
			}
		}
	}
	fresh := make(map[int64]*appState, len(set.Apps))
	for _, a := range set.Apps {
		fresh[a.ID] = &appState{app: a}
	}
	artifacts := make(map[int64]*mds.Artifact, len(set.Artifacts))
	for _, a := range set.Artifacts {
		artifacts[a.ID] = a
	}
	deltas := map[int64][]*mds.Delta{} // by the package they lead to
	for _, d := range set.Deltas {
		deltas[d.To] = append(deltas[d.To], d)
	}
	ruleSets := make(map[int64]*mds.RuleSet, len(set.RuleSets))
	for _, rs := range set.RuleSets {
		ruleSets[rs.ID] = rs
	}
	catalogs := map[int64]*gray.Catalog{} // per app: shared rules are remembered per check, and a check is of one app
	// Rolled-back tasks first: what they withdrew no live task delivers.
	for _, withdrawals := range []bool{true, false} {
		for _, t := range set.Tasks {
			if !t.Status.Delivered() || (t.Status == mds.StatusRolledBack) != withdrawals {
				continue
			}
			as, ok := fresh[t.AppID]
			if !ok {
				n.skip(t, "it belongs to unknown app %d", t.AppID)
				continue
			}
			cat, ok := catalogs[t.AppID]
			if !ok {
				cat = gray.NewCatalog(ruleSets, lists)
				catalogs[t.AppID] = cat
			}
			if err := as.compile(t, artifacts, deltas, cat, lists); err != nil {
				n.skip(t, "%v", err)
			}
		}
	}
	for _, v := range set.Config {
		if as, ok := fresh[v.AppID]; ok {
			as.config.version(v)
		}
	}
	for _, as := range fresh {
		as.upgrade.finish()
		as.hotpatch.finish()
		as.offline.finish()
		as.config.finish(as.app)
		e.add(as)
		added = append(added, as)
	}
	return n, added, dropped
}

func (n *Snapshot) skip(t *mds.Task, format string, args ...any) {
	n.Problems = append(n.Problems, fmt.Errorf("delivery: task %d skipped: "+format, append([]any{t.ID}, args...)...))
}

// compile adds live task t to the app's selectors; deltas are the ready
// deltas to offline packages, by the package they lead to.
func (as *appState) compile(t *mds.Task, artifacts map[int64]*mds.Artifact, deltas map[int64][]*mds.Delta, cat *gray.Catalog, lists map[int64]*gray.List) error {
	o := &Offer{App: as.app, Task: t}
	if t.ArtifactID != 0 {
		a, ok := artifacts[t.ArtifactID]
		if !ok || a.AppID != t.AppID || a.Kind != t.Kind {
			return fmt.Errorf("it delivers %s package %d, which app %d does not have", t.Kind, t.ArtifactID, t.AppID)
		}
		o.Artifact = a
	}
	if t.Status == mds.StatusRolledBack {
		// Withdrawn: no audience, nothing served; only the devices that
		// run its patch are told, to go back.
		if t.Kind != mds.KindHotpatch || o.Artifact == nil {
			return fmt.Errorf("only hotpatch tasks roll back; it is %s", t.Kind)
		}
		return as.hotpatch.withdraw(t, o.Artifact)
	}
	var err error
	if o.audience, err = cat.Compile(t); err != nil {
		return err
	}
	switch t.Kind {
	case mds.KindUpgrade:
		err = as.upgrade.add(o)
	case mds.KindHotpatch:
		err = as.hotpatch.add(o)
	case mds.KindOffline:
		err = as.offline.add(o, deltas[o.Artifact.ID])
	case mds.KindConfig:
		err = as.config.add(o)
	default:
		err = fmt.Errorf("kind %q has no selector", t.Kind)
	}
	if err != nil {
		return err
	}
	as.offers++
	for _, id := range t.Targeting.Whitelists {
		if as.lists == nil {
			as.lists = map[int64]*gray.List{}
		}
		as.lists[id] = lists[id]
	}
	if o.Artifact != nil {
		for _, b := range o.Artifact.Blobs {
			as.serve(b.SHA256)
		}
		for _, d := range deltas[o.Artifact.ID] {
			as.serve(d.SHA256)
		}
	}
	return nil
}

// serve adds blob sum to those the app's live tasks deliver.
func (as *appState) serve(sum string) {
	if !slices.Contains(as.blobs, sum) {
		as.blobs = append(as.blobs, sum)
	}
}

// snapshotEditor builds a snapshot from its predecessor's parts.
type snapshotEditor struct {
	n    *Snapshot
	apps indexEditor[string, *appState]
	byID indexEditor[int64, *appState]
}

// add and remove put an app's part in and take it out, with its keys and
// offers.
func (e *snapshotEditor) add(as *appState) {
	e.apps.set(as.app.Key, as)
	if as.app.PreviousKey != "" {
		e.apps.set(as.app.PreviousKey, as)
	}
	e.byID.set(as.app.ID, as)
	e.n.offers += as.offers
}

func (e *snapshotEditor) remove(as *appState) {
	for _, key := range []string{as.app.Key, as.app.PreviousKey} {
		if cur, _ := e.n.apps.get(key); cur == as {
			e.apps.delete(key)
		}
	}
	e.byID.delete(as.app.ID)
	e.n.offers -= as.offers
}

// Offers returns how many offers, one per live task, the snapshot holds.
func (s *Snapshot) Offers() int { return s.offers }

// list returns the compiled whitelist id as s holds it for app, if a live
// task of the app uses it: what the app's next compile may reuse.
func (s *Snapshot) list(app, id int64) *gray.List {
	if s == nil {
		return nil
	}
	if as, ok := s.byID.get(app); ok {
		return as.lists[id]
	}
	return nil
}

// Decision is what a check answers, per kind.
type Decision struct {
	App *mds.App
	// Memo is the transport's, kept with the app's part of the snapshot
	// while the app does not change (see Offer.Memo).
	Memo     *atomic.Value
	Upgrade  UpgradeChoice
	Hotpatch HotpatchChoice
	// Offline are the offline packages offered, by package ID. Its array
	// is reused from one Evaluate into the same Decision to the next.
	Offline []OfflinePick
	Config  ConfigChoice
}

// Reset empties d, keeping the array of Offline for the next Evaluate but
// none of what it pointed at: a kept Decision does not hold on to
// snapshots.
func (d *Decision) Reset() {
	clear(d.Offline[:cap(d.Offline)])
	*d = Decision{Offline: d.Offline[:0]}
}

// Evaluate decides, into dec, what the input's device is offered of every
// kind. It fails with ENOTFOUND for an app key the snapshot does not know
// and EINVALID for a platform the app does not ship on (dec.App is set
// then). It does not allocate once dec.Offline has grown to what a device
// is offered; the only state it touches is adm's, and only for a device
// nothing but an open capped window would admit.
func (s *Snapshot) Evaluate(in *gray.Input, adm gray.Admitter, dec *Decision) error {
	d := in.Device
	*dec = Decision{Offline: dec.Offline[:0]}
	as, ok := s.apps.get(d.AppKey)
	if !ok {
		return &errUnknownApp
	}
	dec.App, dec.Memo = as.app, &as.memo
	if !as.app.HasPlatform(d.Platform) {
		return &errPlatform
	}
	dec.Upgrade = as.upgrade.decide(in, adm)
	dec.Hotpatch = as.hotpatch.decide(in, adm)
	dec.Offline = as.offline.decide(in, adm, dec.Offline)
	dec.Config = as.config.decide(in, adm)
	return nil
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
	as, ok := s.apps.get(in.Device.AppKey)
	if !ok {
		return nil, &errUnknownApp
	}
	out := []Explanation{}
	out = append(out, as.upgrade.explain(in, adm)...)
	out = append(out, as.hotpatch.explain(in, adm)...)
	out = append(out, as.offline.explain(in, adm)...)
	out = append(out, as.config.explain(in, adm)...)
	return out, nil
}

// Config returns the configuration of the app whose devices send key, nil
// for an app without any.
func (s *Snapshot) Config(key string) *Config {
	if as, ok := s.apps.get(key); ok {
		return as.config.c
	}
	return nil
}

// ExplainConfig is the configuration the device of in would get, from
// explanations Explain gave for it: the app's, and the changes that
// matched.
func (s *Snapshot) ExplainConfig(in *gray.Input, explained []Explanation) ConfigChoice {
	as, ok := s.apps.get(in.Device.AppKey)
	if !ok || as.config.c == nil {
		return ConfigChoice{}
	}
	ch := ConfigChoice{Config: as.config.c}
	for _, e := range explained {
		if e.Kind != mds.KindConfig || !e.Matched {
			continue
		}
		for i, c := range as.config.c.Changes {
			if c.Task.ID == e.TaskID {
				ch.Admitted |= 1 << i
			}
		}
	}
	return ch
}

// explanation starts the explanation of offer o.
func (o *Offer) explanation() Explanation {
	e := Explanation{Kind: o.Task.Kind, TaskID: o.Task.ID, Stage: o.Task.Stage}
	if o.Artifact != nil {
		e.ArtifactID, e.Version = o.Artifact.ID, o.Artifact.Version
	}
	return e
}
