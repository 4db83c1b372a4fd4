package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The layout of a state directory.
const (
	stateFile    = "state.json"
	patchesDir   = "patches"   // patches/<patch_id>/: one extracted patch each
	downloadsDir = "downloads" // downloads/<sha256>[.part]
	tmpPrefix    = ".tmp-"     // patches/.tmp-<patch_id>-<random>/, being extracted
	partSuffix   = ".part"
)

// stateFormat is the revision of state.json this SDK writes. Open refuses
// a higher one: an older SDK must not rewrite what a newer one wrote, and
// lose what it does not know (an app downgrade).
const stateFormat = 1

// state is state.json. Every field a device needs to resume after any
// crash is here, and nothing else: what was accepted from the server
// (for replay and freeze protection and 304s), what runs, and what must
// never run again.
type state struct {
	Format int `json:"format"`
	// Answer is the last accepted answer; its version is the highest this
	// device ever accepted, since a lower one is never accepted.
	Answer *storedAnswer `json:"answer"`
	// Current is the patch the app runs; nil for none. Previous is the
	// one the app ran when Current was applied, kept installed so that a
	// revert or a rollback to it needs no network, and so that a running
	// app's files never go from under it.
	Current  *patchRecord `json:"current"`
	Previous *patchRecord `json:"previous"`
	// Pending: Current was applied and the app has not yet called
	// MarkHealthy. Launched: a launch (Start) has run it since.
	Pending  bool `json:"pending"`
	Launched bool `json:"launched"`
	// Bad are the IDs of patches reverted because the app did not
	// confirm them: never applied again.
	Bad []int64 `json:"bad"`
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
// directory can move, and a state file cannot point outside it.
type patchRecord struct {
	ID           int64  `json:"patch_id"`
	PatchVersion int64  `json:"patch_version"`
	Dir          string `json:"dir"`
}

func newRecord(id, version int64) *patchRecord {
	return &patchRecord{ID: id, PatchVersion: version, Dir: patchDir(id)}
}

func patchDir(id int64) string { return patchesDir + "/" + strconv.FormatInt(id, 10) }

func (p *patchRecord) valid() bool {
	return p.ID > 0 && p.PatchVersion > 0 && p.Dir == patchDir(p.ID)
}

func sameRecord(a, b *patchRecord) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func (s *state) isBad(id int64) bool { return slices.Contains(s.Bad, id) }

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
	switch {
	case st.Format > stateFormat:
		return state{}, fmt.Errorf("sdk: %s is of format %d, written by a newer SDK; this one reads format %d", filepath.Join(dir, stateFile), st.Format, stateFormat)
	case st.Current != nil && !st.Current.valid(), st.Previous != nil && !st.Previous.valid():
		return state{}, fmt.Errorf("sdk: %s names a patch directory that is not patches/<patch_id>: the file was edited; remove the state directory to start over", filepath.Join(dir, stateFile))
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
	if err := writeFileAtomic(dir, stateFile, append(b, '\n')); err != nil {
		return fmt.Errorf("sdk: saving the state: %w", err)
	}
	return nil
}

// commit makes next the state, in memory only once it is on disk, so that
// st is always what state.json holds. The caller holds mu.
func (c *Client) commit(next state) error {
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
	if s.Current != nil {
		p := *s.Current
		n.Current = &p
	}
	if s.Previous != nil {
		p := *s.Previous
		n.Previous = &p
	}
	n.Bad = slices.Clone(s.Bad)
	return n
}

// writeFileAtomic writes name in dir: a temporary file in dir, synced,
// renamed over name, and dir synced so that the rename itself survives a
// power loss.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// syncDir makes the entries of dir (files created, renamed, removed in it)
// durable. Windows cannot sync a directory, and makes renames durable
// without.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// recover brings the directory in line with the state after a crash, at
// Open: it removes temporary files and patch directories the state does
// not name. A named patch whose directory has gone (removed behind the
// SDK's back) is forgotten, falling back to the previous one, so that the
// app is never told to run files that are not there.
func (c *Client) recover() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.st.clone()
	exists := func(p *patchRecord) bool {
		fi, err := os.Stat(c.path(p.Dir))
		return err == nil && fi.IsDir()
	}
	if next.Previous != nil && !exists(next.Previous) {
		next.Previous = nil
	}
	if next.Current != nil && !exists(next.Current) {
		next.Current, next.Previous = next.Previous, nil
		next.Pending, next.Launched = false, false
	}
	if !sameRecord(next.Current, c.st.Current) || !sameRecord(next.Previous, c.st.Previous) {
		if err := c.commit(next); err != nil {
			return err
		}
	}
	if err := removeTemps(c.dir, "."+stateFile+"-"); err != nil {
		return err
	}
	return c.prunePatches()
}

// prunePatches removes every entry of patches/ but the directories of the
// current and the previous patch: temporary extractions, and patches the
// state stopped naming before a crash let them be removed. The extraction
// an Apply is running is spared. The caller holds mu, and has committed
// the state that names what stays.
func (c *Client) prunePatches() error {
	entries, err := os.ReadDir(c.path(patchesDir))
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, p := range []*patchRecord{c.st.Current, c.st.Previous} {
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
		return syncDir(c.path(patchesDir))
	}
	return nil
}

// removeTemps removes dir's files whose names start with prefix: the
// temporary files of writes a crash interrupted.
func removeTemps(dir, prefix string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
