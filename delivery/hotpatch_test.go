package delivery_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
)

// patch adds a hotpatch of version n for app versions to the fixture,
// delivered by a task of status with targeting tg.
func (f *fixture) patch(a *mds.App, n int64, status mds.Status, tg mds.Targeting, targets ...mds.HotpatchTarget) *mds.Task {
	spec := &mds.HotpatchSpec{PatchVersion: n, Targets: targets, KeyID: strings.Repeat("cd", 32),
		SHA256: fmt.Sprintf("%064x", f.nextID+1), Size: 10, Files: 1}
	art := &mds.Artifact{ID: f.id(), AppID: a.ID, Kind: mds.KindHotpatch, Platform: mds.Android, Version: fmt.Sprint(n), Spec: spec}
	art.Blobs = spec.Blobs()
	stage := mds.StageOfficial
	if tg.HasGates() {
		stage = mds.StageGray
	}
	t := &mds.Task{ID: f.id(), AppID: a.ID, Kind: mds.KindHotpatch, ArtifactID: art.ID, Policy: &mds.HotpatchPolicy{},
		Status: status, Stage: stage, Targeting: tg}
	f.set.Artifacts = append(f.set.Artifacts, art)
	f.set.Tasks = append(f.set.Tasks, t)
	return t
}

func hotpatchOf(t *testing.T, s *delivery.Snapshot, d *mds.Device) delivery.HotpatchChoice {
	t.Helper()
	in := gray.NewInput(d, netip.Addr{}, now)
	var dec delivery.Decision
	err := s.Evaluate(&in, nil, &dec)
	if err != nil {
		t.Fatal(err)
	}
	return dec.Hotpatch
}

// say renders a choice as the device is told it.
func say(c delivery.HotpatchChoice) string {
	switch {
	case c.Rollback && c.Offer == nil:
		return "rollback to none"
	case c.Rollback:
		return "rollback to " + c.Offer.Artifact.Version
	case c.Offer != nil:
		return "run " + c.Offer.Artifact.Version
	}
	return "nothing"
}

func TestHotpatchChoice(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	v210 := mds.HotpatchTarget{AppVersion: "2.1.0"}
	nobody := mds.Targeting{Rollout: &mds.Rollout{Percent: 0.01}, Rules: []mds.Rule{{Field: "model", Operator: "IN", Values: []string{"none"}}}}
	p1 := f.patch(shop, 1, mds.StatusLive, mds.Targeting{}, v210)
	p2 := f.patch(shop, 2, mds.StatusLive, mds.Targeting{}, v210, mds.HotpatchTarget{AppVersion: "2.1.1", Build: 45})
	p3 := f.patch(shop, 3, mds.StatusRolledBack, mds.Targeting{}, v210, mds.HotpatchTarget{AppVersion: "2.2.0"})
	p4 := f.patch(shop, 4, mds.StatusLive, nobody, v210)             // gray, admitting no one
	p5 := f.patch(shop, 5, mds.StatusStopped, mds.Targeting{}, v210) // stopped: devices that run it keep it
	s := f.compile(t)
	if len(s.Problems) != 0 {
		t.Fatal(s.Problems)
	}
	ran := func(task *mds.Task, n int64) *mds.AppliedPatch {
		return &mds.AppliedPatch{ID: task.ArtifactID, PatchVersion: n}
	}
	for _, c := range []struct {
		name    string
		version string
		build   int64
		runs    *mds.AppliedPatch
		want    string
	}{
		{"fresh device gets the newest live patch that admits it", "2.1.0", 0, nil, "run 2"},
		{"a device running it is told the same", "2.1.0", 0, ran(p2, 2), "run 2"},
		{"an older patch is replaced", "2.1.0", 0, ran(p1, 1), "run 2"},
		{"a withdrawn patch goes back to the previous live one", "2.1.0", 0, ran(p3, 3), "rollback to 2"},
		{"a patch it runs that the gray audience no longer holds is kept", "2.1.0", 0, ran(p4, 4), "nothing"},
		{"a stopped patch it runs is kept", "2.1.0", 0, ran(p5, 5), "nothing"},
		{"a build-specific target matches its build", "2.1.1", 45, nil, "run 2"},
		{"and no other build", "2.1.1", 46, nil, "nothing"},
		{"another app version gets nothing", "2.2.0", 0, nil, "nothing"},
		{"a withdrawn patch of a version with no live patch goes back to none", "2.2.0", 0, ran(p3, 3), "rollback to none"},
		{"a patch of the version the app was upgraded from is not running", "2.2.0", 0, ran(p2, 2), "nothing"},
		{"nor is a withdrawn one, which it is not told to roll back", "3.0.0", 0, ran(p3, 3), "nothing"},
	} {
		d := device("shop", mds.Android, c.version)
		d.Build, d.Hotpatch = c.build, c.runs
		if got := say(hotpatchOf(t, s, d)); got != c.want {
			t.Errorf("%s: told %q, want %q", c.name, got, c.want)
		}
	}

	// A newer live patch than the withdrawn one is simply applied.
	var g fixture
	shop = g.app("shop", mds.Android)
	w := g.patch(shop, 3, mds.StatusRolledBack, mds.Targeting{}, v210)
	g.patch(shop, 6, mds.StatusLive, mds.Targeting{}, v210)
	d := device("shop", mds.Android, "2.1.0")
	d.Hotpatch = ran(w, 3)
	if got := say(hotpatchOf(t, g.compile(t), d)); got != "run 6" {
		t.Errorf("withdrawn patch with a newer live one: %q", got)
	}
}

func TestHotpatchWithdrawnIsNotServed(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	f.patch(shop, 1, mds.StatusRolledBack, mds.Targeting{}, mds.HotpatchTarget{AppVersion: "2.1.0"})
	s := f.compile(t)
	sum := f.set.Artifacts[0].Spec.(*mds.HotpatchSpec).SHA256
	if s.Offers() != 0 {
		t.Errorf("a rolled-back task counts as %d offers", s.Offers())
	}
	f.set.Revision = 1
	live := delivery.NewLive(&fakeLive{set: f.set})
	if err := live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if live.Serves(sum) {
		t.Error("a withdrawn patch's file is still served")
	}
}

func TestHotpatchExplain(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	v210 := mds.HotpatchTarget{AppVersion: "2.1.0"}
	f.patch(shop, 1, mds.StatusLive, mds.Targeting{}, v210)
	w := f.patch(shop, 2, mds.StatusRolledBack, mds.Targeting{}, v210)
	f.patch(shop, 3, mds.StatusLive, mds.Targeting{}, mds.HotpatchTarget{AppVersion: "2.2.0"})
	d := device("shop", mds.Android, "2.1.0")
	d.Hotpatch = &mds.AppliedPatch{ID: w.ArtifactID, PatchVersion: 2}
	in := gray.NewInput(d, netip.Addr{}, now)
	out, err := f.compile(t).Explain(&in, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range out {
		if e.Kind != mds.KindHotpatch {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s matched=%v chosen=%v %s", e.Version, e.Matched, e.Chosen, e.Steps[0].Detail))
	}
	want := []string{
		"3 matched=false chosen=false patch 3 patches 2.2.0; the device runs 2.1.0 build 0",
		"1 matched=true chosen=true patch 1 patches 2.1.0 build 0",
		fmt.Sprintf("2 matched=true chosen=false the device runs patch 2, which task %d rolled back: it is told to go back to patch 1", w.ID),
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("explain:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestHotpatchWithdrawalIsOfThePatch: a patch rolled back by one task is
// withdrawn whichever task delivers it.
func TestHotpatchWithdrawalIsOfThePatch(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	v210 := mds.HotpatchTarget{AppVersion: "2.1.0"}
	live := f.patch(shop, 1, mds.StatusLive, mds.Targeting{}, v210)
	w := f.patch(shop, 1, mds.StatusRolledBack, mds.Targeting{}, v210)
	w.ArtifactID = live.ArtifactID // two tasks of one patch: the live one first
	f.set.Artifacts = f.set.Artifacts[:1]
	s := f.compile(t)
	if len(s.Problems) != 1 || !strings.Contains(s.Problems[0].Error(), "rolled back by task") {
		t.Errorf("problems: %v", s.Problems)
	}
	d := device("shop", mds.Android, "2.1.0")
	if got := say(hotpatchOf(t, s, d)); got != "nothing" {
		t.Errorf("a fresh device is offered a withdrawn patch: %q", got)
	}
	d.Hotpatch = &mds.AppliedPatch{ID: live.ArtifactID, PatchVersion: 1}
	if got := say(hotpatchOf(t, s, d)); got != "rollback to none" {
		t.Errorf("a device running it: %q", got)
	}
}

func TestHotpatchDecideDoesNotAllocate(t *testing.T) {
	var f fixture
	shop := f.app("shop", mds.Android)
	v210 := mds.HotpatchTarget{AppVersion: "2.1.0"}
	for n := int64(1); n <= 10; n++ {
		f.patch(shop, n, mds.StatusLive, mds.Targeting{Rollout: &mds.Rollout{Percent: 50}}, v210)
	}
	w := f.patch(shop, 11, mds.StatusRolledBack, mds.Targeting{}, v210)
	s := f.compile(t)
	d := device("shop", mds.Android, "2.1.0")
	d.Hotpatch = &mds.AppliedPatch{ID: w.ArtifactID, PatchVersion: 11}
	var dec delivery.Decision
	if n := testing.AllocsPerRun(200, func() {
		in := gray.NewInput(d, netip.Addr{}, now)
		s.Evaluate(&in, nil, &dec)
	}); n != 0 {
		t.Errorf("deciding a hotpatch allocates %.1f times", n)
	}
}
