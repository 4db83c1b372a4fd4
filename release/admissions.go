package release

import (
	"context"
	"sync"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Admissions implements gray.Admitter for one node: what this node knows of
// each capped window, in memory, in front of the store that decides.
//
// The store is asked only when memory cannot answer: while a window is
// open, for a device this node has not seen admitted (at most once per
// device that gets in, and once per node to learn the window is full).
// Once a window is full or closed its admitted set cannot grow, so it is
// read in full, once, and answered from memory from then on. A check thus
// touches the store at most cap + nodes times per window.
type Admissions struct {
	store   mds.AdmissionStore
	onError func(error)
	mu      sync.Mutex
	windows map[int64]*window
}

type window struct {
	mu       sync.Mutex
	spec     mds.Window          // the window this state is for; an edit resets it
	admitted map[uint64]struct{} // gray.Hash of admitted device IDs
	complete bool                // admitted holds every admission: the window is full or closed
}

// NewAdmissions returns admissions backed by store; onError hears of store
// failures, during which devices are not admitted.
func NewAdmissions(store mds.AdmissionStore, onError func(error)) *Admissions {
	return &Admissions{store: store, onError: onError, windows: map[int64]*window{}}
}

// storeTimeout bounds a check's wait on the store.
const storeTimeout = 2 * time.Second

func (a *Admissions) window(task int64, spec *mds.Window) *window {
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.windows[task]
	if !ok {
		w = &window{spec: *spec, admitted: map[uint64]struct{}{}}
		a.windows[task] = w
	}
	return w
}

// sync resets what was concluded under another window spec (an edit of the
// task's cap or times): known admissions stand, completeness does not.
// Called with w.mu held.
func (w *window) sync(spec *mds.Window) {
	if w.spec != *spec {
		w.spec, w.complete = *spec, false
	}
}

// Admit implements gray.Admitter.
func (a *Admissions) Admit(task int64, spec *mds.Window, device string, now time.Time) bool {
	w := a.window(task, spec)
	h := gray.Hash(device)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sync(spec)
	if _, ok := w.admitted[h]; ok {
		return true
	}
	if w.complete {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ok, err := a.store.Admit(ctx, task, device, spec.Cap, now)
	if err != nil {
		a.fail(err)
		return false
	}
	if ok {
		w.admitted[h] = struct{}{}
		return true
	}
	// Full: learn who got in, here or on other nodes, once and for all.
	a.reload(ctx, task, w)
	_, ok = w.admitted[h]
	return ok
}

// Admitted implements gray.Admitter. After the window closes its set is
// final and read once; before that (for explanations) it is read afresh.
func (a *Admissions) Admitted(task int64, spec *mds.Window, device string, now time.Time) (bool, int) {
	w := a.window(task, spec)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sync(spec)
	if !w.complete {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		a.reload(ctx, task, w)
		w.complete = w.complete && !now.Before(spec.End) || len(w.admitted) >= spec.Cap
	}
	_, ok := w.admitted[gray.Hash(device)]
	return ok, len(w.admitted)
}

// reload reads the window's whole admitted set. Called with w.mu held.
func (a *Admissions) reload(ctx context.Context, task int64, w *window) {
	devices, err := a.store.Admitted(ctx, task)
	if err != nil {
		a.fail(err)
		return
	}
	for _, d := range devices {
		w.admitted[gray.Hash(d)] = struct{}{}
	}
	w.complete = true
}

func (a *Admissions) fail(err error) {
	if a.onError != nil {
		a.onError(err)
	}
}
