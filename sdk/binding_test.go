package sdk

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mds-dev/mds"
)

// TestAnswerNotForDevice: an answer is signed with the device state it
// was computed for, and one computed for another is refused, before its
// version is looked at; one that names none breaks the protocol.
func TestAnswerNotForDevice(t *testing.T) {
	for name, c := range map[string]struct {
		bind func(d mds.Device) any
		want error
	}{
		"another platform": {func(d mds.Device) any { d.Platform = mds.IOS; return echo(d) }, ErrNotForDevice},
		"another app version spelling": {func(d mds.Device) any {
			d.AppVersion = "v" + d.AppVersion
			return echo(d)
		}, ErrNotForDevice},
		"no build":        {func(d mds.Device) any { d.Build = 0; return echo(d) }, ErrNotForDevice},
		"a running patch": {func(d mds.Device) any { d.Hotpatch = &mds.AppliedPatch{ID: 12, PatchVersion: 3}; return echo(d) }, ErrNotForDevice},
		"no device":       {func(mds.Device) any { return nil }, ErrMalformedAnswer},
		"not an object":   {func(mds.Device) any { return "android" }, ErrMalformedAnswer},
		"a lower version too": {func(d mds.Device) any {
			d.Build++
			return echo(d)
		}, ErrNotForDevice},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.set(func(f *fakeServer) { f.doc.Version = 5 })
			e.check()
			e.srv.set(func(f *fakeServer) {
				f.bind = c.bind
				if name == "a lower version too" {
					f.doc.Version = 4
				}
			})
			before := e.snapshot()
			if _, err := e.c.Check(t.Context()); !errors.Is(err, c.want) {
				t.Fatalf("%v, want %v", err, c.want)
			}
			e.assertUnchanged(before)
		})
	}
	// The app is checked first.
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) {
		f.doc.App = "ak_other"
		f.bind = func(mds.Device) any { return echoed{} }
	})
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrWrongApp) {
		t.Fatalf("another app and device: %v", err)
	}
}

// TestAnswerForAnotherDevicesState: what a proxy holding the (public)
// app key can fetch, for a device state of its choosing, is refused by a
// device in another: here, "apply patch 1" fetched for a device running
// none, served to one running patch 2 to downgrade it, and "nothing to
// do" fetched likewise, served to withhold the rollback of patch 2.
func TestAnswerForAnotherDevicesState(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	two, _ := e.patch(2)
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, ""))
	e.runsHealthy()
	asIfNone := func(d mds.Device) any { d.Hotpatch = nil; return echo(d) }
	e.srv.set(func(f *fakeServer) { f.bind = asIfNone })
	for _, h := range []*HotpatchInstruction{e.srv.instruction(ActionApply, 1, 1, one, ""), nil} {
		e.srv.answer(h)
		before := e.snapshot()
		_, err := e.c.Check(t.Context())
		if !errors.Is(err, ErrNotForDevice) {
			t.Fatalf("%+v: %v", h, err)
		}
		e.assertUnchanged(before)
	}
	if st := e.c.Status(); st.Running == nil || st.Running.ID != 2 {
		t.Fatalf("runs %+v", st.Running)
	}
}

// TestNotModifiedChecksDevice: a stored answer is reused on a 304 only
// for the device state it was computed for: once the app runs another
// patch, the ETag is not sent, and a 304 is refused.
func TestNotModifiedChecksDevice(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	// Not yet launched: the app runs none, as the stored answer says.
	if a := e.check(); !a.NotModified {
		t.Fatal("the answer for the state the device is in was not reused")
	}
	e.launch()
	e.srv.set(func(f *fakeServer) { f.force = http.StatusNotModified })
	before := e.snapshot()
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrNotForDevice) {
		t.Fatalf("304 reusing an answer for another state: %v", err)
	}
	e.assertUnchanged(before)
	if got := e.srv.lastCheck().ifNoneMatch; got != "" {
		t.Errorf("sent the ETag of an answer for another state: %q", got)
	}
}

// TestApplyChecksDevice: an answer is followed only for the state it was
// computed for: once a launch runs the patch it applied, it is stale.
func TestApplyChecksDevice(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	e.srv.answer(e.srv.instruction(ActionApply, 1, 1, one, ""))
	a := e.check()
	if r, err := e.c.Apply(t.Context(), a); err != nil || r.Outcome != OutcomeApplied {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := e.c.Start(); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	if _, err := e.c.Apply(t.Context(), a); !errors.Is(err, ErrNotForDevice) {
		t.Fatalf("an answer for a device running none, followed by one running patch 1: %v", err)
	}
	e.assertUnchanged(before)
}

// TestDowngradeRefused: an apply must go up from the patch that runs;
// only a rollback goes back. A staged patch does not count: it does not
// run.
func TestDowngradeRefused(t *testing.T) {
	e := newEnv(t)
	two, _ := e.patch(2)
	three, _ := e.patch(3)
	four, _ := e.patch(4)
	five, _ := e.patch(5)
	e.mustFollow(e.srv.instruction(ActionApply, 3, 3, three, ""))
	e.runsHealthy()
	gets := e.srv.getCount()
	if err := e.refused(e.srv.instruction(ActionApply, 2, 2, two, "")); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("apply of a lower version: %v", err)
	}
	other := pack(t, e.team, 3, patchFiles{"a": []byte("a")})
	if err := e.refused(e.srv.instruction(ActionApply, 9, 3, other, "")); !errors.Is(err, ErrDowngrade) {
		t.Fatalf("apply of an equal version: %v", err)
	}
	if e.srv.getCount() != gets {
		t.Error("downloaded a patch it refuses")
	}
	e.mustFollow(e.srv.instruction(ActionApply, 5, 5, five, ""))
	r := e.mustFollow(e.srv.instruction(ActionApply, 4, 4, four, ""))
	if r.Outcome != OutcomeApplied || r.From.ID != 5 || r.Patch.ID != 4 {
		t.Fatalf("apply over a staged patch of a higher version: %+v", r)
	}
	if st := e.c.Status(); st.Previous == nil || st.Previous.ID != 3 {
		t.Errorf("%+v", st)
	}
	assertPatchDirs(t, e.dir, "3", "4")
	// A rollback goes back.
	e.launch()
	if r := e.mustFollow(e.srv.instruction(ActionRollback, 3, 3, three, "")); r.Outcome != OutcomeRolledBack || r.Patch.ID != 3 {
		t.Fatalf("rollback: %+v", r)
	}
}

// TestStagedPatch: an answer is computed for the patch that runs, and a
// patch applied since the launch (staged) is not it: an answer that does
// not say to run it cancels it before it ever runs; a rollback of the
// running patch to it keeps it, and retires the running one.
func TestStagedPatch(t *testing.T) {
	e := newEnv(t)
	one, _ := e.patch(1)
	two, _ := e.patch(2)
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, one, ""))
	e.runsHealthy()
	stage := func() {
		t.Helper()
		if r := e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, "")); r.Outcome != OutcomeApplied {
			t.Fatalf("stage: %+v", r)
		}
		// The answer computed for patch 1 says to apply patch 2 still:
		// nothing to do.
		if r := e.mustFollow(e.srv.instruction(ActionApply, 2, 2, two, "")); r.Outcome != OutcomeNothing || r.Patch.ID != 2 {
			t.Fatalf("again: %+v", r)
		}
	}
	for _, c := range []struct {
		name string
		h    *HotpatchInstruction
	}{
		{"nothing to do", nil},
		{"apply what runs", e.srv.instruction(ActionApply, 1, 1, one, "")},
		{"rollback to what runs", e.srv.instruction(ActionRollback, 1, 1, one, "")},
		{"an action it does not know", &HotpatchInstruction{Action: "defer", PatchID: 2}}, // last: it leaves patch 2 staged
	} {
		name, h := c.name, c.h
		stage()
		r := e.mustFollow(h)
		if h != nil && h.Action == "defer" {
			if r.Outcome != OutcomeNothing || e.c.Status().Current.ID != 2 {
				t.Fatalf("%s: %+v", name, r)
			}
			continue
		}
		if r.Outcome != OutcomeCancelled || r.From.ID != 2 || r.Patch.ID != 1 {
			t.Fatalf("%s: %+v", name, r)
		}
		st := e.c.Status()
		if st.Current.ID != 1 || st.Running.ID != 1 || st.Previous != nil || st.Pending {
			t.Fatalf("%s: after: %+v", name, st)
		}
		assertPatchDirs(t, e.dir, "1")
	}
	// Patch 2 is staged (the unknown action left it). Patch 1, running,
	// is withdrawn, back to patch 2: it stays staged, to run from the
	// next launch, and a revert of it goes to no patch, never to patch 1.
	r := e.mustFollow(e.srv.instruction(ActionRollback, 2, 2, two, ""))
	if r.Outcome != OutcomeRolledBack || r.From.ID != 1 || r.Patch.ID != 2 {
		t.Fatalf("rollback to the staged patch: %+v", r)
	}
	st := e.c.Status()
	if st.Current.ID != 2 || !st.Pending || st.Previous != nil || st.Running != nil {
		t.Fatalf("after: %+v", st)
	}
	assertPatchDirs(t, e.dir, "1", "2")
	e.launch()
	assertPatchDirs(t, e.dir, "2")
	if st := e.launch(); st.Reverted == nil || st.Current != nil {
		t.Fatalf("revert: %+v", st)
	}
}

// TestAppUpgradeDropsPatches: a patch is for the installed versions its
// manifest targets; once the app is another, it is dropped at Open, its
// files removed, and never reported.
func TestAppUpgradeDropsPatches(t *testing.T) {
	e := newEnv(t)
	both := pack(t, e.team, 1, patchFiles{"a": []byte("a")}, mds.HotpatchTarget{AppVersion: testAppVersion}, mds.HotpatchTarget{AppVersion: "2.1.0"})
	only := pack(t, e.team, 2, patchFiles{"b": []byte("b")}, mds.HotpatchTarget{AppVersion: testAppVersion, Build: testBuild})
	e.mustFollow(e.srv.instruction(ActionApply, 1, 1, both, ""))
	e.runsHealthy()
	e.mustFollow(e.srv.instruction(ActionApply, 2, 2, only, ""))
	e.runsHealthy()

	// Another build of the version: patch 2 patches build 200 only.
	cfg := e.config()
	cfg.Device.Build = testBuild + 1
	e.c = e.openWith(cfg)
	st := e.c.Status()
	if st.Current != nil || st.Running != nil || st.Previous == nil || st.Previous.ID != 1 || st.Pending {
		t.Fatalf("after a new build: %+v", st)
	}
	assertPatchDirs(t, e.dir, "1")
	e.check()
	if p := e.srv.lastCheck().device.Hotpatch; p != nil {
		t.Errorf("the check reported %+v", p)
	}
	// Committed: the state file says so.
	e.c.Close()
	if st, err := loadState(e.dir); err != nil || st.Current != nil {
		t.Fatalf("state.json: %+v %v", st.Current, err)
	}
	// Another version altogether, patch 1 being the current one.
	e.c = e.openWith(cfg)
	e.mustFollow(e.srv.instruction(ActionRollback, 1, 1, both, ""))
	if st := e.c.Status(); st.Current == nil || st.Current.ID != 1 {
		t.Fatalf("rollback to the kept patch: %+v", st)
	}
	cfg.Device.AppVersion = "3.0.0"
	e.c = e.openWith(cfg)
	if st := e.c.Status(); st.Current != nil || st.Previous != nil {
		t.Fatalf("after an upgrade to 3.0.0: %+v", st)
	}
	assertPatchDirs(t, e.dir)
}

// TestFormat1State: a state of format 1 names patches without their
// targets, for versions it does not say: they are dropped.
func TestFormat1State(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "patches", "12"), 0o700); err != nil {
		t.Fatal(err)
	}
	old := map[string]any{"format": 1, "answer": nil, "current": map[string]any{"patch_id": 12, "patch_version": 1, "dir": "patches/12"},
		"previous": nil, "pending": false, "launched": false, "bad": []int64{7}}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.dir = dir
	e.c = e.open()
	if st := e.c.Status(); st.Current != nil || len(st.Bad) != 1 {
		t.Fatalf("%+v", st)
	}
	assertPatchDirs(t, dir)
}
