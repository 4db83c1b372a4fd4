package delivery

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/version"
)

// upgrades is the upgrade kind's selector: per platform, the live upgrade
// offers in priority order (newest version, then highest build, then newest
// task); a device gets the first one newer than it that admits it.
//
// The offers are held by value, and each holds what the walk reads of its
// package, task and audience, so that a check walks one array rather than
// chasing a few pointers per offer: with thousands of apps those are cache
// misses, the most of what a check costs beyond HTTP.
type upgrades struct {
	byPlatform [3][]UpgradeOffer
	// enterprise holds the live enterprise iOS offers by package ID, for the
	// install manifests that their itms-services links point at.
	enterprise map[int64]*UpgradeOffer
}

// UpgradeOffer is an upgrade task compiled with its package.
type UpgradeOffer struct {
	*Offer
	Spec    *mds.UpgradeSpec
	Policy  mds.UpgradePolicy // a copy, like the fields below, for the walk
	version version.Key
	ranges  []version.KeyRange // the package's installed-version ranges
	// Copies, for the walk: Spec.Build, Spec.Channel, Task.ID, and whether
	// the audience admits every device. What they copy does not change
	// once compiled.
	build    int64
	channel  string
	task     int64
	everyone bool
}

// UpgradeChoice is the upgrade a device is offered, if any.
type UpgradeChoice struct {
	Offer *UpgradeOffer // nil when no upgrade applies
	// Remind says whether the device should prompt its user now.
	Remind bool
}

func (u *upgrades) add(o *Offer) error {
	spec, ok := o.Artifact.Spec.(*mds.UpgradeSpec)
	policy := o.Task.UpgradePolicy()
	if !ok || policy == nil {
		return fmt.Errorf("an upgrade task needs an upgrade package and policy")
	}
	i := o.Artifact.Platform.Index()
	if i < 0 {
		return fmt.Errorf("package %d has unknown platform %q", o.Artifact.ID, o.Artifact.Platform)
	}
	uo := UpgradeOffer{Offer: o, Spec: spec, Policy: *policy, version: version.NewKey(o.Artifact.Version),
		build: spec.Build, channel: spec.Channel, task: o.Task.ID, everyone: o.audience.Everyone()}
	for _, r := range spec.AppVersions {
		uo.ranges = append(uo.ranges, r.Keys())
	}
	u.byPlatform[i] = append(u.byPlatform[i], uo)
	return nil
}

// finish orders the offers; from then on they stay where they are, and
// pointers to them hold.
func (u *upgrades) finish() {
	for _, offers := range u.byPlatform {
		slices.SortFunc(offers, func(a, b UpgradeOffer) int {
			if c := version.CompareKeys(b.version, a.version); c != 0 {
				return c
			}
			if c := cmp.Compare(b.build, a.build); c != 0 {
				return c
			}
			return cmp.Compare(b.task, a.task)
		})
		for j := range offers {
			if o := &offers[j]; o.Spec.Enterprise {
				if u.enterprise == nil {
					u.enterprise = map[int64]*UpgradeOffer{}
				}
				u.enterprise[o.Artifact.ID] = o
			}
		}
	}
}

func (u *upgrades) decide(in *gray.Input, adm gray.Admitter) UpgradeChoice {
	d := in.Device
	offers := u.byPlatform[d.Platform.Index()]
	for i := range offers {
		o := &offers[i]
		if !o.newerThan(in) {
			break // offers are newest first: nothing further on is newer either
		}
		if !o.packageAdmits(in) || !o.everyone && !o.audience.Decide(in, adm) {
			continue
		}
		return UpgradeChoice{Offer: o, Remind: o.Policy.Remind(o.task, d, in.Now)}
	}
	return UpgradeChoice{}
}

// newerThan reports whether the offer's package is newer than the device's
// app: a newer version, or the same version with a higher build.
func (o *UpgradeOffer) newerThan(in *gray.Input) bool {
	switch c := version.CompareKeys(o.version, in.AppVersion()); {
	case c > 0:
		return true
	case c < 0:
		return false
	}
	return in.Device.Build > 0 && o.build > in.Device.Build
}

// packageAdmits applies what the package itself says: channel and
// installed-version ranges.
func (o *UpgradeOffer) packageAdmits(in *gray.Input) bool {
	if ch := o.channel; ch != "" && ch != in.Device.Channel {
		return false
	}
	return inRanges(o.ranges, in.AppVersion())
}

// inRanges reports whether v is in one of ranges; none is every version.
func inRanges(ranges []version.KeyRange, v version.Key) bool {
	if len(ranges) == 0 {
		return true
	}
	for _, r := range ranges {
		if r.Contains(v) {
			return true
		}
	}
	return false
}

func (u *upgrades) explain(in *gray.Input, adm gray.Admitter) []Explanation {
	d := in.Device
	var out []Explanation
	chosen := false
	for i, offers := range u.byPlatform {
		for j := range offers {
			o := &offers[j]
			e := o.explanation()
			step := func(detail string, ok bool) {
				e.Steps = append(e.Steps, gray.Step{What: "package", Detail: detail, Passed: ok})
			}
			a, p := o.Artifact, o.Spec
			switch {
			case mds.Platforms[i] != d.Platform:
				step(fmt.Sprintf("package is for %s; the device is %s", a.Platform, d.Platform), false)
			case !o.newerThan(in):
				step(fmt.Sprintf("package %s (build %d) is not newer than the device's %s (build %d)", a.Version, p.Build, d.AppVersion, d.Build), false)
			case !o.packageAdmits(in):
				step(fmt.Sprintf("package admits channel %q and installed versions %v; the device is on channel %q, version %s",
					p.Channel, p.AppVersions, d.Channel, d.AppVersion), false)
			default:
				step(fmt.Sprintf("package %s is newer than %s and admits the device", a.Version, d.AppVersion), true)
				var steps []gray.Step
				e.Matched, steps = o.audience.Explain(in, adm)
				e.Steps = append(e.Steps, steps...)
			}
			if e.Matched && !chosen {
				e.Chosen, chosen = true, true
			}
			out = append(out, e)
		}
	}
	return out
}

// Enterprise returns the live offer of app appKey's enterprise iOS package
// id, if any. Only packages a live task delivers have a manifest: stopping
// the task withdraws the over-the-air install too.
func (s *Snapshot) Enterprise(appKey string, id int64) (*UpgradeOffer, bool) {
	as, ok := s.apps.get(appKey)
	if !ok {
		return nil, false
	}
	o, ok := as.upgrade.enterprise[id]
	return o, ok
}
