package delivery

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// hotpatches is the hotpatch kind's selector. Per platform it holds the
// live patches newest first (patch version, then task), and the patches
// rolled back. A device's current patch is the first live one that
// patches its exact app version (and build, when the patch names one)
// and whose audience admits it: at most one per (app, platform, app
// version). What the device is told follows from that and the patch it
// reports running, exactly: run the current patch; or, when it runs a
// withdrawn patch, go back to the current one (older) or to none; or
// nothing.
type hotpatches struct {
	byPlatform [3][]HotpatchOffer
	withdrawn  [3][]withdrawal
}

// HotpatchOffer is a live hotpatch task compiled with its patch.
type HotpatchOffer struct {
	*Offer
	Spec *mds.HotpatchSpec
	// Copies, for the walk: the spec's targets and patch version, the
	// task's ID, and whether the audience admits every device.
	targets  []mds.HotpatchTarget
	patch    int64
	task     int64
	everyone bool
}

// withdrawal is a patch a rolled-back task withdrew.
type withdrawal struct {
	artifact, task, patch int64
	targets               []mds.HotpatchTarget
}

// HotpatchChoice is what a device is told of hotpatches.
type HotpatchChoice struct {
	// Offer is the patch the device should run: nil for none.
	Offer *HotpatchOffer
	// Rollback says the patch the device runs was withdrawn, and Offer
	// (older than it, or nil) is what it goes back to.
	Rollback bool
}

// add adds a live task's patch, unless a rolled-back task withdrew that
// patch: a withdrawal is of the patch, whichever task delivers it, and
// snapshots compile withdrawals first.
func (h *hotpatches) add(o *Offer) error {
	spec, ok := o.Artifact.Spec.(*mds.HotpatchSpec)
	if !ok || o.Task.Policy.Kind() != mds.KindHotpatch {
		return fmt.Errorf("a hotpatch task needs a hotpatch and its policy")
	}
	i := o.Artifact.Platform.Index()
	if i < 0 {
		return fmt.Errorf("hotpatch %d has unknown platform %q", o.Artifact.ID, o.Artifact.Platform)
	}
	if w := h.withdrew(i, o.Artifact.ID); w != nil {
		return fmt.Errorf("its patch %d was rolled back by task %d; release a new patch version instead", o.Artifact.ID, w.task)
	}
	h.byPlatform[i] = append(h.byPlatform[i], HotpatchOffer{Offer: o, Spec: spec, targets: spec.Targets,
		patch: spec.PatchVersion, task: o.Task.ID, everyone: o.audience.Everyone()})
	return nil
}

// withdraw records the patch of rolled-back task t.
func (h *hotpatches) withdraw(t *mds.Task, a *mds.Artifact) error {
	spec, ok := a.Spec.(*mds.HotpatchSpec)
	i := a.Platform.Index()
	if !ok || i < 0 {
		return fmt.Errorf("rolled-back task %d does not deliver a hotpatch", t.ID)
	}
	h.withdrawn[i] = append(h.withdrawn[i], withdrawal{artifact: a.ID, task: t.ID, patch: spec.PatchVersion, targets: spec.Targets})
	return nil
}

// finish orders the offers; from then on pointers to them hold.
func (h *hotpatches) finish() {
	for _, offers := range h.byPlatform {
		slices.SortFunc(offers, func(a, b HotpatchOffer) int {
			if c := cmp.Compare(b.patch, a.patch); c != 0 {
				return c
			}
			return cmp.Compare(b.task, a.task)
		})
	}
}

// patches reports whether the offer patches the device's installed build.
func (o *HotpatchOffer) patches(d *mds.Device) bool { return patches(o.targets, d) }

func patches(targets []mds.HotpatchTarget, d *mds.Device) bool {
	for _, t := range targets {
		if t.Matches(d.AppVersion, d.Build) {
			return true
		}
	}
	return false
}

func (h *hotpatches) decide(in *gray.Input, adm gray.Admitter) HotpatchChoice {
	d := in.Device
	i := d.Platform.Index()
	var cur *HotpatchOffer
	offers := h.byPlatform[i]
	for j := range offers {
		o := &offers[j]
		if o.patches(d) && (o.everyone || o.audience.Decide(in, adm)) {
			cur = o
			break
		}
	}
	return h.resolve(i, cur, d)
}

// resolve says what a device of platform i is told, given cur, its
// current patch (nil for none), and the patch it reports running.
func (h *hotpatches) resolve(i int, cur *HotpatchOffer, d *mds.Device) HotpatchChoice {
	run := d.Hotpatch
	if run != nil && h.foreign(i, run.ID, d) {
		// A patch of another app version: the app was upgraded under it,
		// and it does not run; patch versions of different app versions
		// do not compare.
		run = nil
	}
	switch {
	case run == nil || cur != nil && cur.Artifact.ID == run.ID:
		return HotpatchChoice{Offer: cur}
	case h.withdrew(i, run.ID) != nil:
		if cur != nil && cur.patch > run.PatchVersion {
			return HotpatchChoice{Offer: cur}
		}
		return HotpatchChoice{Offer: cur, Rollback: true}
	case cur != nil && cur.patch > run.PatchVersion:
		return HotpatchChoice{Offer: cur}
	}
	// The device runs a patch that is not withdrawn and no older than
	// what it would get (one paused or stopped, or whose gray audience
	// no longer holds it): it keeps it. Only a rollback takes a patch back.
	return HotpatchChoice{}
}

// foreign reports whether patch id, known to the snapshot, does not patch
// the device's app version and build.
func (h *hotpatches) foreign(i int, id int64, d *mds.Device) bool {
	for j := range h.byPlatform[i] {
		if o := &h.byPlatform[i][j]; o.Artifact.ID == id {
			return !o.patches(d)
		}
	}
	if w := h.withdrew(i, id); w != nil {
		return !patches(w.targets, d)
	}
	return false
}

// withdrew returns the withdrawal of patch id on platform i, if any.
func (h *hotpatches) withdrew(i int, id int64) *withdrawal {
	for j := range h.withdrawn[i] {
		if w := &h.withdrawn[i][j]; w.artifact == id {
			return w
		}
	}
	return nil
}

// explain explains every live patch of the device's platform, and what
// the device is told, by the same resolve as decide.
func (h *hotpatches) explain(in *gray.Input, adm gray.Admitter) []Explanation {
	d := in.Device
	var out []Explanation
	var cur *HotpatchOffer
	curAt := -1
	for i, offers := range h.byPlatform {
		for j := range offers {
			o := &offers[j]
			e := o.explanation()
			step := func(detail string, ok bool) {
				e.Steps = append(e.Steps, gray.Step{What: "hotpatch", Detail: detail, Passed: ok})
			}
			switch {
			case mds.Platforms[i] != d.Platform:
				step(fmt.Sprintf("patch is for %s; the device is %s", o.Artifact.Platform, d.Platform), false)
			case !o.patches(d):
				step(fmt.Sprintf("patch %d patches %s; the device runs %s build %d", o.patch, targetList(o.targets), d.AppVersion, d.Build), false)
			default:
				step(fmt.Sprintf("patch %d patches %s build %d", o.patch, d.AppVersion, d.Build), true)
				var steps []gray.Step
				e.Matched, steps = o.audience.Explain(in, adm)
				e.Steps = append(e.Steps, steps...)
			}
			if e.Matched && cur == nil {
				cur, curAt = o, len(out)
			}
			out = append(out, e)
		}
	}
	i := d.Platform.Index()
	if i < 0 {
		return out
	}
	c := h.resolve(i, cur, d)
	if c.Offer != nil {
		out[curAt].Chosen = true
	}
	run := d.Hotpatch
	switch {
	case c.Rollback:
		w := h.withdrew(i, run.ID)
		to := "no patch"
		if c.Offer != nil {
			to = fmt.Sprintf("patch %d", c.Offer.patch)
		}
		// Chosen when nothing else is: going back to no patch.
		out = append(out, Explanation{Kind: mds.KindHotpatch, TaskID: w.task, ArtifactID: w.artifact, Version: fmt.Sprint(w.patch),
			Matched: true, Chosen: c.Offer == nil, Steps: []gray.Step{{What: "rollback",
				Detail: fmt.Sprintf("the device runs patch %d, which task %d rolled back: it is told to go back to %s", w.patch, w.task, to), Passed: true}}})
	case c.Offer == nil && cur != nil && run != nil:
		out[curAt].Steps = append(out[curAt].Steps, gray.Step{What: "hotpatch",
			Detail: fmt.Sprintf("the device runs patch %d, which is not withdrawn and not older: it keeps it", run.PatchVersion), Passed: false})
	}
	return out
}

func targetList(ts []mds.HotpatchTarget) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.AppVersion
		if t.Build != 0 {
			s += fmt.Sprintf(" build %d", t.Build)
		}
	}
	return s
}
