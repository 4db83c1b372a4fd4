package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
	"github.com/mds-dev/mds/hotpatch"
)

// Patch is an installed hotpatch.
type Patch struct {
	ID           int64  `json:"patch_id"`
	PatchVersion int64  `json:"patch_version"`
	Dir          string `json:"dir"` // absolute: the root of the patch's files
}

// Status is the SDK's state as an app sees it.
type Status struct {
	// Current is the patch to run, nil for none: the app loads its files
	// from Current.Dir.
	Current *Patch `json:"current"`
	// Running is the patch the app runs now, which checks report: Current
	// once a launch (Start) has run it, but while Current was applied
	// since this launch and is pending (not Launched), the Previous one,
	// which the running app loaded.
	Running *Patch `json:"running"`
	// Previous is the patch that ran before Current and is kept
	// installed, for a revert or a rollback without network; nil for none.
	Previous *Patch `json:"previous"`
	// Pending: Current was applied and not yet confirmed by MarkHealthy.
	// Launched: a launch has run it since (Start); the next launch
	// without MarkHealthy between reverts it.
	Pending  bool `json:"pending"`
	Launched bool `json:"launched"`
	// Bad are the patches reverted on this device, never applied again.
	Bad []int64 `json:"bad"`
	// AnswerVersion and AnswerExpires are those of the last accepted
	// answer; 0 and the zero time before the first.
	AnswerVersion int64     `json:"answer_version"`
	AnswerExpires time.Time `json:"answer_expires"`
	// Reverted is set only in what Start returns, when this launch
	// reverted a patch that was not confirmed: the patch now in Bad.
	Reverted *Patch `json:"reverted,omitempty"`
}

// Outcome is what Apply did.
type Outcome string

// Outcomes.
const (
	// OutcomeNothing: nothing to do: the answer has no hotpatch
	// instruction (or one of an action this SDK does not know), or the
	// device already runs what it says.
	OutcomeNothing Outcome = "nothing"
	// OutcomeApplied: the patch is installed and current, pending until
	// MarkHealthy; the app runs it from the next launch.
	OutcomeApplied Outcome = "applied"
	// OutcomeRolledBack: the withdrawn patch is gone; the patch rolled
	// back to, or none, is current.
	OutcomeRolledBack Outcome = "rolled_back"
	// OutcomeSkippedBad: the patch to apply was reverted on this device
	// before, and is not applied again.
	OutcomeSkippedBad Outcome = "skipped_bad"
	// OutcomeCancelled: a patch applied and not yet launched is dropped
	// before it ever runs, because the answer (computed for the patch
	// that runs) no longer says to run it: it was withdrawn, paused, or
	// its audience no longer holds the device. The running patch stays
	// current.
	OutcomeCancelled Outcome = "cancelled"
)

// Result is what Apply did, and what runs now.
type Result struct {
	Outcome Outcome `json:"outcome"`
	Patch   *Patch  `json:"patch"` // current after Apply; nil for none
	From    *Patch  `json:"from"`  // current before Apply; nil for none
	// Downloaded: the patch was downloaded and extracted, rather than
	// taken from the kept previous patch.
	Downloaded bool `json:"downloaded"`
	// Bad is the bad patch the instruction named: the one skipped, or the
	// target of a rollback that went to no patch instead. 0 otherwise.
	Bad int64 `json:"bad,omitempty"`
}

// Apply follows the answer's hotpatch instruction. The answer was
// computed for the patch the app runs (R, Status.Running), which may
// differ from the current one: a patch applied since the app started is
// staged, current and pending but not launched, and runs from the next
// launch.
//
//   - apply X: skipped if X is bad on this device; nothing if X is
//     current already (running or staged). If X is R, a staged patch is
//     cancelled (OutcomeCancelled): R stays current. Otherwise X must be
//     above R in patch_version (ErrDowngrade: only a rollback goes back;
//     every installed patch patches this app version, so versions
//     compare), and is taken from the kept previous patch if it is X, or
//     downloaded, verified and extracted. X becomes current and pending,
//     R becomes the previous patch, and a staged patch, which never ran,
//     is removed.
//   - rollback to Y (0 for none): R is withdrawn. Nothing if Y is R
//     (but a staged patch is cancelled). If Y is the staged patch, it
//     stays staged, with no previous. Otherwise Y (taken from the
//     previous patch, or downloaded) becomes current, not pending, with
//     no previous. A Y that is bad on this device is not run: the
//     rollback goes to no patch. R's files stay, retired, until the next
//     Start, since the running app may still load them; it never becomes
//     current or previous again.
//   - no instruction: R is what the device should keep running: a
//     staged patch is cancelled. An action this SDK does not know is
//     ignored.
//
// A patch is verified in this order, the first failure refusing it: its
// version against R's (ErrDowngrade), the answer's key_id is a trusted
// team key (ErrUnknownTeamKey, before anything is downloaded), the
// download (ErrTooLong, ErrHashMismatch), the archive's structure
// (ErrBadPatch), the manifest's key is a trusted team key
// (ErrUnknownTeamKey), its signature (ErrBadPatchSignature), its app,
// platform, targets and patch version (ErrPatchMismatch), and every file
// as it is extracted (ErrBadPatch, matching hotpatch.ErrCorrupt). A
// refusal or an error leaves the state as it was.
//
// Apply follows only answers Check returned, only for the device's state
// now (ErrNotForDevice: it ran, or stopped running, a patch since the
// check), and only while they stand (ErrExpired) and no newer one was
// accepted since (ErrReplay).
func (c *Client) Apply(ctx context.Context, a *Answer) (Result, error) {
	c.install.Lock()
	defer c.install.Unlock()
	if err := c.follows(a, mds.KindHotpatch); err != nil {
		return Result{}, err
	}
	c.mu.Lock()
	st := c.st.clone()
	c.mu.Unlock()
	nothing := Result{Outcome: OutcomeNothing, Patch: c.public(st.Current), From: c.public(st.Current)}
	h := a.Hotpatch
	if h == nil {
		if st.staged() {
			return c.cancel(st.running())
		}
		return nothing, nil
	}
	switch h.Action {
	case ActionApply:
		return c.applyPatch(ctx, h, &st, nothing)
	case ActionRollback:
		return c.rollback(ctx, h, &st, nothing)
	}
	// An action a newer server knows and this SDK does not: ignored, as
	// unknown members are, rather than failing what the answer says else.
	return nothing, nil
}

func (c *Client) applyPatch(ctx context.Context, h *HotpatchInstruction, st *state, nothing Result) (Result, error) {
	if h.PatchID <= 0 || h.PatchVersion <= 0 {
		return Result{}, refusal(ErrMalformedAnswer, "apply names patch %d version %d; both must be positive", h.PatchID, h.PatchVersion)
	}
	if st.isBad(h.PatchID) {
		nothing.Outcome, nothing.Bad = OutcomeSkippedBad, h.PatchID
		return nothing, nil
	}
	if st.Current != nil && st.Current.ID == h.PatchID {
		return nothing, nil
	}
	run := st.running()
	if run != nil && run.ID == h.PatchID {
		// The device should run what it runs: the staged patch (Current
		// is not X) is not to run.
		if run.PatchVersion != h.PatchVersion {
			return Result{}, refusal(ErrMalformedAnswer, "apply names patch %d version %d, and the device runs version %d of it", h.PatchID, h.PatchVersion, run.PatchVersion)
		}
		return c.cancel(run)
	}
	// Every patch the state names patches this app version and build
	// (others are dropped at Open), as must X, so their versions compare.
	if run != nil && h.PatchVersion <= run.PatchVersion {
		return Result{}, refusal(ErrDowngrade, "apply names patch %d version %d, and the app runs patch %d version %d of the same app version: only a rollback goes back", h.PatchID, h.PatchVersion, run.ID, run.PatchVersion)
	}
	p, err := c.obtain(ctx, h, st)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = c.finish(p, run, func(next *state) {
		res.From = c.public(next.Current)
		// The patch the app runs now is kept: its files must not go
		// from under a running process. A staged current patch, which
		// no process ran, is dropped.
		next.Current, next.Previous = p.rec, next.running()
		next.Pending, next.Launched = true, false
		res.Patch = c.public(next.Current)
	})
	if err != nil {
		return Result{}, err
	}
	res.Outcome, res.Downloaded = OutcomeApplied, p.tmp != ""
	return res, nil
}

func (c *Client) rollback(ctx context.Context, h *HotpatchInstruction, st *state, nothing Result) (Result, error) {
	if h.PatchID < 0 {
		return Result{}, refusal(ErrMalformedAnswer, "rollback to patch %d", h.PatchID)
	}
	target, bad := h.PatchID, int64(0)
	if target > 0 && st.isBad(target) {
		target, bad = 0, target
	}
	nothing.Bad = bad
	// The answer withdraws the patch the app runs.
	run := st.running()
	switch {
	case target == 0 && run == nil, target > 0 && run != nil && run.ID == target:
		// The device runs the target already: anything staged is not
		// to run.
		if st.staged() {
			res, err := c.cancel(run)
			res.Bad = bad
			return res, err
		}
		return nothing, nil
	case target > 0 && st.Current != nil && st.Current.ID == target:
		// The target is the staged patch, which runs from the next
		// launch; what runs now is retired, and is no longer the patch
		// a revert goes back to.
		res := Result{Outcome: OutcomeRolledBack, From: c.public(run), Bad: bad}
		err := c.finish(prepared{}, run, func(next *state) {
			next.retire(next.Previous)
			next.Previous = nil
			res.Patch = c.public(next.Current)
		})
		if err != nil {
			return Result{}, err
		}
		return res, nil
	}
	var p prepared
	if target > 0 {
		if h.PatchVersion <= 0 {
			return Result{}, refusal(ErrMalformedAnswer, "rollback to patch %d names no patch_version", target)
		}
		var err error
		if p, err = c.obtain(ctx, h, st); err != nil {
			return Result{}, err
		}
	}
	res := Result{Outcome: OutcomeRolledBack, Downloaded: p.tmp != "", Bad: bad, From: c.public(run)}
	err := c.finish(p, run, func(next *state) {
		// The withdrawn patch's files stay until the next Start: the
		// running app may still load them. A staged patch never ran,
		// and goes.
		next.retire(next.running())
		next.Current, next.Previous = p.rec, nil
		next.Pending, next.Launched = false, false
		res.Patch = c.public(next.Current)
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// cancel drops the staged current patch, which never ran, and makes run,
// the patch that runs, current again: what the answer, computed for run,
// says to keep.
func (c *Client) cancel(run *patchRecord) (Result, error) {
	var res Result
	err := c.finish(prepared{}, run, func(next *state) {
		res.From = c.public(next.Current)
		next.Current, next.Previous = next.running(), nil
		next.Pending, next.Launched = false, false
		res.Patch = c.public(next.Current)
	})
	if err != nil {
		return Result{}, err
	}
	res.Outcome = OutcomeCancelled
	return res, nil
}

// prepared is a patch ready for the state to name: rec's directory is in
// place (the kept previous patch), or is extracted in tmp, a directory
// under patches/ that finish renames to it.
type prepared struct {
	rec *patchRecord // nil for no patch
	tmp string
}

// obtain makes the patch h names ready to become current: the kept
// previous patch if it is that patch, else downloaded, verified and
// extracted. A retired patch is neither: its directory is in use by the
// running app. The caller holds install.
func (c *Client) obtain(ctx context.Context, h *HotpatchInstruction, st *state) (prepared, error) {
	if st.isRetired(h.PatchID) {
		return prepared{}, fmt.Errorf("sdk: patch %d was rolled back while the app ran it, and its files stay until the next launch (Start): it cannot be installed before", h.PatchID)
	}
	if prev := st.Previous; prev != nil && prev.ID == h.PatchID && prev.PatchVersion == h.PatchVersion {
		if fi, err := os.Stat(c.path(prev.Dir)); err == nil && fi.IsDir() {
			return prepared{rec: prev}, nil
		}
	}
	// The answer's word on the signing key is checked first, which saves
	// downloading what would be refused; the manifest's is what counts.
	if h.KeyID != "" && c.teamKeys[h.KeyID] == nil {
		return prepared{}, refusal(ErrUnknownTeamKey, "the answer says patch %d is signed by key %s, which this build does not trust", h.PatchID, h.KeyID)
	}
	path, err := c.download(ctx, h.remote(c.maxPatch))
	if err != nil {
		return prepared{}, err
	}
	return c.extract(path, h)
}

// extract verifies the downloaded hotpatch at path and extracts it into a
// new temporary directory under patches/.
func (c *Client) extract(path string, h *HotpatchInstruction) (prepared, error) {
	f, err := os.Open(path)
	if err != nil {
		return prepared{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return prepared{}, err
	}
	pkg, err := hotpatch.Open(f, fi.Size(), hotpatch.DefaultLimits)
	if err != nil {
		return prepared{}, fmt.Errorf("%w: %w", ErrBadPatch, err)
	}
	if err := c.checkPatch(pkg, h); err != nil {
		return prepared{}, err
	}
	c.mu.Lock()
	tmp, err := os.MkdirTemp(c.path(patchesDir), tmpPrefix+strconv.FormatInt(h.PatchID, 10)+"-")
	if err == nil {
		c.extracting = filepath.Base(tmp)
	}
	c.mu.Unlock()
	if err != nil {
		return prepared{}, fmt.Errorf("sdk: creating the patch directory: %w", err)
	}
	if err := pkg.Extract(tmp); err != nil {
		c.abandon(tmp)
		if errors.Is(err, hotpatch.ErrCorrupt) {
			return prepared{}, fmt.Errorf("%w: %w", ErrBadPatch, err)
		}
		return prepared{}, fmt.Errorf("sdk: extracting patch %d: %w", h.PatchID, err)
	}
	return prepared{rec: newRecord(h.PatchID, h.PatchVersion, pkg.Manifest.Targets), tmp: tmp}, nil
}

// abandon removes an extraction that will not be installed.
func (c *Client) abandon(tmp string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	os.RemoveAll(tmp)
	c.extracting = ""
}

// checkPatch checks that a trusted team key signed pkg and that it is the
// patch h names, for this device.
func (c *Client) checkPatch(pkg *hotpatch.Package, h *HotpatchInstruction) error {
	m := pkg.Manifest
	key := c.teamKeys[m.KeyID]
	if key == nil {
		return refusal(ErrUnknownTeamKey, "patch %d is signed by key %s, which this build does not trust", h.PatchID, m.KeyID)
	}
	if err := pkg.Verify(key); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPatchSignature, err)
	}
	d := &c.cfg.Device
	switch {
	case m.AppKey != d.AppKey:
		return refusal(ErrPatchMismatch, "patch %d is for app %q, this device is app %q", h.PatchID, m.AppKey, d.AppKey)
	case m.Platform != d.Platform:
		return refusal(ErrPatchMismatch, "patch %d is for %s, this device runs %s", h.PatchID, m.Platform, d.Platform)
	case !slices.ContainsFunc(m.Targets, func(t hotpatch.Target) bool {
		return t.AppVersion == d.AppVersion && (t.Build == 0 || t.Build == d.Build)
	}):
		return refusal(ErrPatchMismatch, "patch %d does not patch app version %s build %d", h.PatchID, d.AppVersion, d.Build)
	case m.PatchVersion != h.PatchVersion:
		return refusal(ErrPatchMismatch, "the answer names patch %d version %d, the file is version %d", h.PatchID, h.PatchVersion, m.PatchVersion)
	}
	return nil
}

// finish installs p and commits the state change makes, under mu: an
// extracted patch's directory is renamed into place (and the rename
// synced) before the state names it, and patch directories the new state
// no longer names are removed after. A crash anywhere leaves a state
// naming only complete directories. run is the patch that ran when Apply
// began, which the answer was computed for: if a launch or a revert
// changed it meanwhile, nothing is done (ErrNotForDevice).
func (c *Client) finish(p prepared, run *patchRecord, change func(next *state)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.st.running(); !samePatch(now, run) {
		return refusal(ErrNotForDevice, "the patch the app runs changed while the answer was followed: check again")
	}
	if p.tmp != "" {
		defer func() {
			os.RemoveAll(p.tmp) // gone once renamed
			c.extracting = ""
		}()
		if err := c.place(p); err != nil {
			return err
		}
	}
	next := c.st.clone()
	change(&next)
	if err := c.commit(next); err != nil {
		return err
	}
	c.tidy()
	return nil
}

// place renames an extracted patch to its directory. A directory already
// there is a leftover the state does not name, but for a kept previous
// patch of the same ID and another version, which the state stops naming
// first. The directory of a patch the app runs, current or retired, is
// never replaced. The caller holds mu.
func (c *Client) place(p prepared) error {
	if cur := c.st.Current; cur != nil && cur.ID == p.rec.ID {
		return fmt.Errorf("sdk: patch %d became current while it was being installed; apply again", p.rec.ID)
	}
	if run := c.st.running(); run != nil && run.ID == p.rec.ID || c.st.isRetired(p.rec.ID) {
		return fmt.Errorf("sdk: the directory of patch %d is in use by the running app; apply after the next launch", p.rec.ID)
	}
	if prev := c.st.Previous; prev != nil && prev.ID == p.rec.ID {
		next := c.st.clone()
		next.Previous = nil
		if err := c.commit(next); err != nil {
			return err
		}
	}
	final := c.path(p.rec.Dir)
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("sdk: removing a leftover patch directory: %w", err)
	}
	if err := os.Rename(p.tmp, final); err != nil {
		return fmt.Errorf("sdk: installing patch %d: %w", p.rec.ID, err)
	}
	return atomicfile.SyncDir(c.path(patchesDir))
}

// tidy removes what a committed state change left unused: patch
// directories it no longer names, and downloads, which are of patches the
// device has moved past. Failing to is harmless, and retried by the next
// change and by Open, so it does not fail what was committed. The caller
// holds mu.
func (c *Client) tidy() {
	c.prunePatches()
	if entries, err := os.ReadDir(c.path(downloadsDir)); err == nil {
		for _, e := range entries {
			os.Remove(c.path(downloadsDir + "/" + e.Name()))
		}
	}
}

// Start is what an app calls once per launch, before it loads a patch: it
// returns what to run (Current.Dir). If the current patch is pending, this
// is its first launch, and it runs; if it was launched before and the app
// never called MarkHealthy, that launch failed: Start reverts to the
// previous patch, remembers the pending one as bad, and never applies it
// again (Status.Reverted says which). The process that ran before is
// gone, so the files of patches rolled back while it ran them (retired)
// are removed; and patches that do not patch the configured app version
// and build are dropped, as at Open.
func (c *Client) Start() (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.st.clone()
	changed := c.dropForeign(&next)
	if len(next.Retired) > 0 {
		next.Retired, changed = nil, true
	}
	var reverted *Patch
	switch {
	case !next.Pending || next.Current == nil:
	case !next.Launched:
		next.Launched, changed = true, true
	default:
		reverted = c.public(next.Current)
		if !next.isBad(next.Current.ID) {
			next.Bad = append(next.Bad, next.Current.ID)
		}
		next.Current, next.Previous = next.Previous, nil
		next.Pending, next.Launched = false, false
		changed = true
	}
	if !changed {
		return c.status(), nil
	}
	if err := c.commit(next); err != nil {
		return c.status(), err
	}
	c.prunePatches()
	st := c.status()
	st.Reverted = reverted
	return st, nil
}

// MarkHealthy confirms the patch the app runs: the app runs well with it.
// A pending current patch that a launch ran is no longer pending, and a
// later launch does not revert it. A patch applied since this launch is
// not what the app runs, and is not confirmed: the launch that runs it
// confirms it.
func (c *Client) MarkHealthy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.st.Pending || c.st.staged() {
		return nil
	}
	next := c.st.clone()
	next.Pending, next.Launched = false, false
	return c.commit(next)
}

// Status returns the state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status()
}

func (c *Client) status() Status {
	s := Status{
		Current:  c.public(c.st.Current),
		Running:  c.public(c.st.running()),
		Previous: c.public(c.st.Previous),
		Pending:  c.st.Pending,
		Launched: c.st.Launched,
		Bad:      slices.Clone(c.st.Bad),
	}
	if a := c.st.Answer; a != nil {
		s.AnswerVersion, s.AnswerExpires = a.Version, a.Expires
	}
	return s
}

// PatchDir is the directory of the current patch's files; "" for none.
func (c *Client) PatchDir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.Current == nil {
		return ""
	}
	return c.path(c.st.Current.Dir)
}

func (c *Client) public(p *patchRecord) *Patch {
	if p == nil {
		return nil
	}
	return &Patch{ID: p.ID, PatchVersion: p.PatchVersion, Dir: c.path(p.Dir)}
}
