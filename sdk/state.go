package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
)

// The layout of a state directory.
const (
	stateFile    = "state.json"
	lockFile     = ".lock"     // flocked by the one Client using the directory
	patchesDir   = "patches"   // patches/<patch_id>/: one extracted patch each
	downloadsDir = "downloads" // downloads/<sha256>[.part]
	offlineRoot  = "offline"   // offline/<package>/<version>/: an installed offline package each
	tmpPrefix    = ".tmp-"     // patches/.tmp-<patch_id>-<random>/, offline/<package>/.tmp-<version>-<random>/: being extracted
	partSuffix   = ".part"
)

// stateFormat is the revision of state.json this SDK writes. Open refuses
// a higher one: an older SDK must not rewrite what a newer one wrote, and
// lose what it does not know (an app downgrade). Format 2 added each
// patch's targets and the retired patches; a format 1 state is read, and
// its patches, whose targets it does not record, are dropped at Open.
// Format 3 added the offline packages.
const stateFormat = 3

// state is state.json. Every field a device needs to resume after any
// crash is here, and nothing else: what was accepted from the server
// (for replay and freeze protection and 304s), what runs, and what must
// never run again.
type state struct {
	Format int `json:"format"`
	// Answer is the last accepted answer; its version is the highest this
	// device ever accepted, since a lower one is never accepted.
	Answer *storedAnswer `json:"answer"`
	// Current is the patch the app runs, or, while it is pending and not
	// launched, will run from the next launch; nil for none. Previous is
	// the one the app ran when Current was applied, kept installed so
	// that a revert or a rollback to it needs no network, and so that a
	// running app's files never go from under it. See running.
	Current  *patchRecord `json:"current"`
	Previous *patchRecord `json:"previous"`
	// Pending: Current was applied and the app has not yet called
	// MarkHealthy. Launched: a launch (Start) has run it since.
	Pending  bool `json:"pending"`
	Launched bool `json:"launched"`
	// Bad are the IDs of patches reverted because the app did not
	// confirm them: never applied again.
	Bad []int64 `json:"bad"`
	// Retired are patches a rollback took away while the app ran them:
	// the running process may still load their files, so their
	// directories stay until the next Start, when that process is gone.
	// They are recorded so that a crash before then does not leak them,
	// and they never become Current or Previous again.
	Retired []*patchRecord `json:"retired"`
	// Offline are the installed offline packages, by package ID.
	Offline map[string]*offlineRecord `json:"offline,omitempty"`
}

// storedAnswer is an accepted answer, exactly as it came, so that a 304
// can reuse it and its signature can be checked again.
type storedAnswer struct {
	Version   int64     `json:"version"`
	Expires   time.Time `json:"expires"`
	ETag      string    `json:"etag"`
	Body      []byte    `json:"body"`      // the signed bytes, base64 in JSON
	Signature string    `json:"signature"` // the Mds-Signature header, values joined by ","
}

// patchRecord is an installed patch. Dir is relative to the state
// directory, slash-separated, and always patches/<patch_id>: a state
// directory can move, and a state file cannot point outside it. Targets
// are its manifest's, the installed versions it patches: a patch is
// dropped once the app's version and build are none of them (the app was
// upgraded under it).
type patchRecord struct {
	ID           int64                `json:"patch_id"`
	PatchVersion int64                `json:"patch_version"`
	Dir          string               `json:"dir"`
	Targets      []mds.HotpatchTarget `json:"targets"`
}

func newRecord(id, version int64, targets []mds.HotpatchTarget) *patchRecord {
	return &patchRecord{ID: id, PatchVersion: version, Dir: patchDir(id), Targets: slices.Clone(targets)}
}

func patchDir(id int64) string { return patchesDir + "/" + strconv.FormatInt(id, 10) }

func (p *patchRecord) valid() bool {
	return p.ID > 0 && p.PatchVersion > 0 && p.Dir == patchDir(p.ID)
}

// patches reports whether p patches an app of version v and build b. A
// record without targets (format 1) patches nothing that is known.
func (p *patchRecord) patches(v string, b int64) bool {
	return slices.ContainsFunc(p.Targets, func(t mds.HotpatchTarget) bool { return t.Matches(v, b) })
}

func (p *patchRecord) clone() *patchRecord {
	if p == nil {
		return nil
	}
	n := *p
	n.Targets = slices.Clone(p.Targets)
	return &n
}

func sameRecord(a, b *patchRecord) bool {
	return a == nil && b == nil || a != nil && b != nil &&
		a.ID == b.ID && a.PatchVersion == b.PatchVersion && a.Dir == b.Dir && slices.Equal(a.Targets, b.Targets)
}

// samePatch reports whether a and b are the same patch, or both none.
func samePatch(a, b *patchRecord) bool {
	return a == nil && b == nil || a != nil && b != nil && a.ID == b.ID && a.PatchVersion == b.PatchVersion
}

func (s *state) isBad(id int64) bool { return slices.Contains(s.Bad, id) }

func (s *state) isRetired(id int64) bool {
	return slices.ContainsFunc(s.Retired, func(p *patchRecord) bool { return p.ID == id })
}

// staged reports whether Current is applied and not yet launched: every
// process of the app started before it was applied, so none runs it.
func (s *state) staged() bool { return s.Current != nil && s.Pending && !s.Launched }

// running is the patch the app actually runs: Current, but while Current
// is staged, the Previous patch that was running when it was applied. It
// is what a check reports, what an answer is computed for, and what a
// rollback withdraws.
func (s *state) running() *patchRecord {
	if s.staged() {
		return s.Previous
	}
	return s.Current
}

// retire records p among the retired patches, unless it is none.
func (s *state) retire(p *patchRecord) {
	if p != nil && !s.isRetired(p.ID) {
		s.Retired = append(s.Retired, p)
	}
}

// loadState reads dir's state.json; a directory without one starts empty.
// A state.json that does not parse is an error rather than a fresh start:
// starting over would forget the bad patches and the highest answer
// version, which protect the device.
func loadState(dir string) (state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return state{Format: stateFormat}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("sdk: reading the state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("sdk: %s does not parse (%v); it is only ever replaced whole, so the storage is damaged: remove the state directory to start over", filepath.Join(dir, stateFile), err)
	}
	invalid := func(p *patchRecord) bool { return p != nil && !p.valid() }
	switch {
	case st.Format > stateFormat:
		return state{}, fmt.Errorf("sdk: %s is of format %d, written by a newer SDK; this one reads format %d", filepath.Join(dir, stateFile), st.Format, stateFormat)
	case invalid(st.Current), invalid(st.Previous), slices.ContainsFunc(st.Retired, func(p *patchRecord) bool { return p == nil || !p.valid() }):
		return state{}, fmt.Errorf("sdk: %s names a patch directory that is not patches/<patch_id>: the file was edited; remove the state directory to start over", filepath.Join(dir, stateFile))
	}
	for p, r := range st.Offline {
		if !r.valid() || r.Package != p {
			return state{}, fmt.Errorf("sdk: %s names an offline package directory that is not offline/<package>/<version>: the file was edited; remove the state directory to start over", filepath.Join(dir, stateFile))
		}
	}
	st.Format = stateFormat
	return st, nil
}

// save writes st as dir's state.json, atomically and durably: a crash
// leaves either the old file or the new one, never a mix.
func saveState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("sdk: saving the state: %w", err)
	}
	return nil
}

// errClosed: a state change asked of a Client after Close, which gave up
// the directory's lock.
var errClosed = errors.New("sdk: the client is closed")

// commit makes next the state, in memory only once it is on disk, so that
// st is always what state.json holds. The caller holds mu.
func (c *Client) commit(next state) error {
	if c.closed {
		return errClosed
	}
	if err := saveState(c.dir, &next); err != nil {
		return err
	}
	c.st = next
	return nil
}

// clone returns a copy of s that shares nothing mutable with it.
func (s *state) clone() state {
	n := *s
	if s.Answer != nil {
		a := *s.Answer
		n.Answer = &a
	}
	n.Current, n.Previous = s.Current.clone(), s.Previous.clone()
	n.Bad = slices.Clone(s.Bad)
	n.Retired = nil
	for _, p := range s.Retired {
		n.Retired = append(n.Retired, p.clone())
	}
	if s.Offline != nil {
		n.Offline = make(map[string]*offlineRecord, len(s.Offline))
		for k, r := range s.Offline {
			n.Offline[k] = r.clone()
		}
	}
	return n
}

// dropForeign drops from st the patches that do not patch the configured
// app version and build: the app was upgraded (or downgraded) under them,
// and a patch is made for the exact native code it patches. What is
// dropped is never reported nor run; with Current dropped, nothing runs
// and nothing is pending, and a Previous that does patch this version is
// kept only as a copy for a rollback. It reports whether it dropped
// anything. Retired patches are left to the next Start.
func (c *Client) dropForeign(st *state) bool {
	d := &c.cfg.Device
	dropped := false
	if st.Previous != nil && !st.Previous.patches(d.AppVersion, d.Build) {
		st.Previous, dropped = nil, true
	}
	if st.Current != nil && !st.Current.patches(d.AppVersion, d.Build) {
		st.Current, dropped = nil, true
		st.Pending, st.Launched = false, false
	}
	return dropped
}

// recover brings the directory in line with the state and the build, at
// Open: it drops patches that do not patch the configured app version and
// build (dropForeign), and removes temporary files and patch directories
// the state does not name. A named patch whose directory has gone
// (removed behind the SDK's back) is forgotten, falling back to the
// previous one, so that the app is never told to run files that are not
// there.
func (c *Client) recover() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.st.clone()
	changed := c.dropForeign(&next)
	exists := func(p *patchRecord) bool {
		fi, err := os.Stat(c.path(p.Dir))
		return err == nil && fi.IsDir()
	}
	if next.Previous != nil && !exists(next.Previous) {
		next.Previous, changed = nil, true
	}
	if next.Current != nil && !exists(next.Current) {
		next.Current, next.Previous = next.Previous, nil
		next.Pending, next.Launched = false, false
		changed = true
	}
	if n := len(next.Retired); n > 0 {
		next.Retired = slices.DeleteFunc(next.Retired, func(p *patchRecord) bool { return !exists(p) })
		changed = changed || len(next.Retired) != n
	}
	for p, r := range next.Offline {
		if r.Previous != nil && !c.isDir(r.Previous.Dir) {
			r.Previous, changed = nil, true
		}
		if !c.isDir(r.Dir) {
			// Removed behind the SDK's back: the previous version, if
			// it is still there, is what the device holds.
			next.Offline[p], changed = r.Previous, true
			if r.Previous == nil {
				delete(next.Offline, p)
			}
		}
	}
	if changed {
		if err := c.commit(next); err != nil {
			return err
		}
	}
	if err := atomicfile.RemoveTemps(c.dir, stateFile); err != nil {
		return err
	}
	if err := c.pruneOffline(); err != nil {
		return err
	}
	return c.prunePatches()
}

// isDir reports whether rel, under the state directory, is a directory.
func (c *Client) isDir(rel string) bool {
	fi, err := os.Stat(c.path(rel))
	return err == nil && fi.IsDir()
}

// prunePatches removes every entry of patches/ but the directories of the
// current, the previous and the retired patches: temporary extractions,
// and patches the state stopped naming before a crash let them be
// removed. The extraction an Apply is running is spared. The caller holds
// mu, and has committed the state that names what stays.
func (c *Client) prunePatches() error {
	entries, err := os.ReadDir(c.path(patchesDir))
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, p := range append([]*patchRecord{c.st.Current, c.st.Previous}, c.st.Retired...) {
		if p != nil {
			keep[strings.TrimPrefix(p.Dir, patchesDir+"/")] = true
		}
	}
	removed := false
	for _, e := range entries {
		if keep[e.Name()] || e.Name() == c.extracting {
			continue
		}
		if err := os.RemoveAll(c.path(patchesDir + "/" + e.Name())); err != nil {
			return fmt.Errorf("sdk: removing an old patch: %w", err)
		}
		removed = true
	}
	if removed {
		return atomicfile.SyncDir(c.path(patchesDir))
	}
	return nil
}
