package delivery

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/version"
)

// offlines is the offline kind's selector. Per package ID (an H5 app) it
// holds the live versions newest first (version, then task). A device's
// version of a package is the first that works with its installed app
// version and whose audience admits it. The device is offered it when it
// holds an older version or none, with the delta from the version it
// holds when one is ready; never an older version than it holds. A
// package that requires global packages the device neither holds nor is
// offered now is held back: its pages would load resources that are not
// there.
type offlines struct {
	packages []offlinePackage // by package ID
}

type offlinePackage struct {
	id     string
	offers []OfflineOffer
}

// OfflineOffer is a live offline task compiled with its package and the
// ready deltas to it.
type OfflineOffer struct {
	*Offer
	Spec *mds.OfflineSpec
	// Deltas are the ready deltas to this version, one per base version.
	Deltas []OfflineDelta
	// Copies, for the walk: the version, its installed-version ranges,
	// the task's ID, and whether the audience admits every device.
	version  version.Key
	ranges   []version.KeyRange
	task     int64
	everyone bool
}

// OfflineDelta is a ready delta to an offer's version from an older one.
type OfflineDelta struct {
	From   string // the version it is applied to
	SHA256 string
	Size   int64
}

// OfflinePick is an offline package a device is offered: its version, and
// the delta from the version the device holds, if one is ready (nil: the
// full package).
type OfflinePick struct {
	Offer *OfflineOffer
	Delta *OfflineDelta
}

// add adds a live task's package, with the ready deltas to it.
func (s *offlines) add(o *Offer, deltas []*mds.Delta) error {
	spec, ok := o.Artifact.Spec.(*mds.OfflineSpec)
	if !ok || o.Task.Policy.Kind() != mds.KindOffline {
		return fmt.Errorf("an offline task needs an offline package and its policy")
	}
	oo := OfflineOffer{Offer: o, Spec: spec, version: version.NewKey(o.Artifact.Version), task: o.Task.ID, everyone: o.audience.Everyone()}
	for _, r := range spec.AppVersions {
		oo.ranges = append(oo.ranges, r.Keys())
	}
	for _, d := range deltas {
		oo.Deltas = append(oo.Deltas, OfflineDelta{From: d.FromVersion, SHA256: d.SHA256, Size: d.Size})
	}
	i, found := slices.BinarySearchFunc(s.packages, spec.Package, func(p offlinePackage, id string) int { return strings.Compare(p.id, id) })
	if !found {
		s.packages = slices.Insert(s.packages, i, offlinePackage{id: spec.Package})
	}
	s.packages[i].offers = append(s.packages[i].offers, oo)
	return nil
}

// finish orders the offers; from then on pointers to them hold.
func (s *offlines) finish() {
	for _, p := range s.packages {
		slices.SortFunc(p.offers, func(a, b OfflineOffer) int {
			return cmp.Or(version.CompareKeys(b.version, a.version), cmp.Compare(b.task, a.task))
		})
	}
}

// worksWith reports whether the offer's package works with the device's
// installed app version.
func (o *OfflineOffer) worksWith(in *gray.Input) bool { return inRanges(o.ranges, in.AppVersion()) }

// delta returns the ready delta from version held, if any.
func (o *OfflineOffer) delta(held string) *OfflineDelta {
	for i := range o.Deltas {
		if o.Deltas[i].From == held {
			return &o.Deltas[i]
		}
	}
	return nil
}

// DeltaIndex returns where d is in o.Deltas; -1 for nil or another's.
func (o *OfflineOffer) DeltaIndex(d *OfflineDelta) int {
	for i := range o.Deltas {
		if &o.Deltas[i] == d {
			return i
		}
	}
	return -1
}

// current returns the device's version of package p: nil for none.
func (p *offlinePackage) current(in *gray.Input, adm gray.Admitter) *OfflineOffer {
	for i := range p.offers {
		o := &p.offers[i]
		if o.worksWith(in) && (o.everyone || o.audience.Decide(in, adm)) {
			return o
		}
	}
	return nil
}

// offered reports whether a device holding held (ok: any) is offered o.
func offered(o *OfflineOffer, held string, holds bool) bool {
	return !holds || version.CompareKeys(o.version, version.NewKey(held)) > 0
}

// decide appends to picks what the device is offered, by package ID.
func (s *offlines) decide(in *gray.Input, adm gray.Admitter, picks []OfflinePick) []OfflinePick {
	first := len(picks)
	for i := range s.packages {
		picks = pick(s.packages[i].current(in, adm), in.Device, picks)
	}
	return settle(picks, first, in.Device)
}

// pick appends to picks what a device d is offered of a package whose
// version for it is cur (nil: none): cur, when d holds an older version
// or none, with the delta from the version held if one is ready.
func pick(cur *OfflineOffer, d *mds.Device, picks []OfflinePick) []OfflinePick {
	if cur == nil {
		return picks
	}
	held, holds := d.Offline[cur.Spec.Package]
	if !offered(cur, held, holds) {
		return picks
	}
	pk := OfflinePick{Offer: cur}
	if holds {
		pk.Delta = cur.delta(held)
	}
	return append(picks, pk)
}

// settle drops from picks[first:] the packages whose required globals d
// neither holds nor is offered: they wait. What they require is global
// and requires nothing, so one pass settles it. The kept picks move down
// over the dropped ones; a dropped pick is never global, so every global
// pick stays somewhere in picks[first:end] for missing to find.
func settle(picks []OfflinePick, first int, d *mds.Device) []OfflinePick {
	end, n := len(picks), first
	for j := first; j < end; j++ {
		if pk := picks[j]; missing(pk.Offer.Spec, d, picks[first:end]) == "" {
			picks[n] = pk
			n++
		}
	}
	return picks[:n]
}

// missing returns a global package spec requires that the device neither
// holds nor is offered in picks, "" when there is none.
func missing(spec *mds.OfflineSpec, d *mds.Device, picks []OfflinePick) string {
	for _, r := range spec.Requires {
		if _, ok := d.Offline[r]; ok {
			continue
		}
		if !slices.ContainsFunc(picks, func(pk OfflinePick) bool {
			return pk.Offer.Spec.Package == r && pk.Offer.Spec.Type == mds.OfflineGlobal
		}) {
			return r
		}
	}
	return ""
}

// explain explains every live version of every package, and what the
// device is offered, by the steps decide takes, but admitting no one: a
// version's audience is its explanation's.
func (s *offlines) explain(in *gray.Input, adm gray.Admitter) []Explanation {
	d := in.Device
	var out []Explanation
	var picks []OfflinePick
	chosen := map[*OfflineOffer]int{} // each package's version for the device, by its explanation
	for i := range s.packages {
		p := &s.packages[i]
		var cur *OfflineOffer
		for j := range p.offers {
			o := &p.offers[j]
			e := o.explanation()
			if !o.worksWith(in) {
				e.Steps = append(e.Steps, gray.Step{What: "offline", Detail: fmt.Sprintf("package %s %s works with app versions %v; the device runs %s",
					p.id, o.Artifact.Version, o.Spec.AppVersions, d.AppVersion)})
			} else {
				e.Steps = append(e.Steps, gray.Step{What: "offline", Passed: true,
					Detail: fmt.Sprintf("package %s %s works with app version %s", p.id, o.Artifact.Version, d.AppVersion)})
				var steps []gray.Step
				e.Matched, steps = o.audience.Explain(in, adm)
				e.Steps = append(e.Steps, steps...)
				if e.Matched && cur == nil {
					cur, chosen[o] = o, len(out)
				}
			}
			out = append(out, e)
		}
		picks = pick(cur, d, picks)
	}
	picks = settle(picks, 0, d)
	for o, at := range chosen {
		e := &out[at]
		held, holds := d.Offline[o.Spec.Package]
		k := slices.IndexFunc(picks, func(pk OfflinePick) bool { return pk.Offer == o })
		var detail string
		switch {
		case k >= 0 && picks[k].Delta != nil:
			detail = fmt.Sprintf("the device holds %s: it gets the delta from it (%d bytes of %d)", held, picks[k].Delta.Size, o.Spec.Size)
		case k >= 0 && holds:
			detail = fmt.Sprintf("the device holds %s, from which no delta is ready: it gets the full package", held)
		case k >= 0:
			detail = "the device holds no version: it gets the full package"
		case !offered(o, held, holds):
			detail = fmt.Sprintf("the device holds %s, not older: nothing to do", held)
		default:
			detail = fmt.Sprintf("it requires global package %s, which the device neither holds nor is offered: it waits for it", missing(o.Spec, d, picks))
		}
		e.Chosen = k >= 0
		e.Steps = append(e.Steps, gray.Step{What: "offline", Detail: detail, Passed: k >= 0})
	}
	return out
}
