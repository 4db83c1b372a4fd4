package release

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Admissions implements gray.Admitter for one node: what this node knows of
// each capped window, in memory, in front of the store that decides.
//
// The store is asked only when memory cannot answer. While a window is
// open, a device this node has not seen admitted costs one Admit: a write
// for each device that gets in, a read-only conflict for a device admitted
// on another node. Once the store refuses a device the window is full, and
// once it is closed (or not yet open) its admitted set cannot grow; either
// way the set is read in full once and answered from memory from then on.
// So per window a node makes at most cap + 1 store calls on the check path.
//
// No lock is held across a store call: a slow store delays the checks that
// need it, not those memory can answer. After a store error, the window
// admits no one new for a second instead of queueing more calls.
type Admissions struct {
	store   mds.AdmissionStore
	onError func(error)
	mu      sync.Mutex
	windows map[int64]*window
}

type window struct {
	lastUse  atomic.Int64 // Unix seconds; windows unused for a day are forgotten
	mu       sync.Mutex
	spec     mds.Window          // the window this state is for; an edit resets what was concluded
	admitted map[uint64]struct{} // gray.Hash of admitted device IDs
	full     bool                // the store refused a device: admitted is complete for this spec
	settled  phase               // admitted was read in full in this phase (before or after the window)
	retryAt  time.Time           // after a store error, no store calls until then
}

type phase uint8

const (
	unsettled phase = iota
	before
	open
	after
)

func phaseOf(w *mds.Window, now time.Time) phase {
	switch {
	case now.Before(w.Start):
		return before
	case now.Before(w.End):
		return open
	}
	return after
}

// NewAdmissions returns admissions backed by store; onError hears of store
// failures, during which devices are not admitted.
func NewAdmissions(store mds.AdmissionStore, onError func(error)) *Admissions {
	return &Admissions{store: store, onError: onError, windows: map[int64]*window{}}
}

const (
	storeTimeout = 2 * time.Second
	retryAfter   = time.Second
	forgetAfter  = 24 * time.Hour
)

func (a *Admissions) window(task int64) *window {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.windows[task]
	if !ok {
		// Creating a window is rare; it is when old ones are forgotten, so
		// the map holds only windows checked in the last day.
		cutoff := time.Now().Add(-forgetAfter).Unix()
		for id, old := range a.windows {
			if old.lastUse.Load() < cutoff {
				delete(a.windows, id)
			}
		}
		w = &window{admitted: map[uint64]struct{}{}}
		a.windows[task] = w
	}
	w.lastUse.Store(time.Now().Unix())
	return w
}

// sync resets what was concluded under another spec (an edit of the
// task's cap or times): known admissions stand, completeness does not.
// Called with w.mu held.
func (w *window) sync(spec *mds.Window) {
	if w.spec != *spec {
		w.spec, w.full, w.settled = *spec, false, unsettled
	}
}

// Admit implements gray.Admitter.
func (a *Admissions) Admit(task int64, spec *mds.Window, device string, now time.Time) bool {
	w := a.window(task)
	h := gray.Hash(device)
	w.mu.Lock()
	w.sync(spec)
	_, known := w.admitted[h]
	full, waiting := w.full, time.Now().Before(w.retryAt)
	w.mu.Unlock()
	switch {
	case known:
		return true
	case full || waiting:
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ok, err := a.store.Admit(ctx, task, device, spec.Cap, now)
	if err != nil {
		a.fail(w, err)
		return false
	}
	if ok {
		w.mu.Lock()
		w.admitted[h] = struct{}{}
		w.mu.Unlock()
		return true
	}
	// Full: learn who got in, here or on other nodes, once and for all.
	a.readAll(ctx, task, w, spec, func(w *window) { w.full = true })
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok = w.admitted[h]
	return ok
}

// Admitted implements gray.Admitter. Outside the window, the set is read
// once per phase and answered from memory after; inside it (explanations
// only: checks then call Admit) the store is asked about the one device.
func (a *Admissions) Admitted(task int64, spec *mds.Window, device string, now time.Time) (bool, int) {
	w := a.window(task)
	h := gray.Hash(device)
	p := phaseOf(spec, now)
	memory := func() (bool, int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, ok := w.admitted[h]
		return ok, len(w.admitted)
	}
	w.mu.Lock()
	w.sync(spec)
	done := w.full || w.settled == p && p != open
	waiting := time.Now().Before(w.retryAt)
	w.mu.Unlock()
	if done || waiting {
		return memory()
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if p == open {
		ok, n, err := a.store.AdmissionStatus(ctx, task, device)
		if err != nil {
			a.fail(w, err)
			return memory()
		}
		return ok, n
	}
	a.readAll(ctx, task, w, spec, func(w *window) { w.settled = p })
	return memory()
}

// readAll reads the window's whole admitted set and, if the spec still
// holds, records it and what that makes complete.
func (a *Admissions) readAll(ctx context.Context, task int64, w *window, spec *mds.Window, complete func(*window)) {
	devices, err := a.store.Admitted(ctx, task)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range devices {
		w.admitted[gray.Hash(d)] = struct{}{}
	}
	if w.spec == *spec {
		complete(w)
	}
}

func (a *Admissions) fail(w *window, err error) {
	w.mu.Lock()
	w.retryAt = time.Now().Add(retryAfter)
	w.mu.Unlock()
	if a.onError != nil {
		a.onError(err)
	}
}
