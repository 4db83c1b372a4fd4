package delivery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Admissions implements gray.Admitter for one node: what the store told
// this node about each capped window, in memory, in front of the store,
// which alone decides.
//
// While a window is open, a device this node has not seen admitted waits
// for a store call that may carry many devices: one call is in flight per
// window at a time, and the devices that arrive meanwhile go together in
// the next. Once the store refuses a device, nothing more can get in under
// this window's settings (it is full, or another node sealed it), so the
// admitted set is read in full, once, and answered from memory from then
// on. The store admits by the window the task has in the store, so a node
// whose snapshot lags an edit of the cap or the end cannot admit past it. Outside the window the set cannot grow either: it is read once per
// phase, and after the end only once the store has sealed the window, so
// an admission that another node was still committing is never missed.
//
// So per window, node and setting the checks make at most
// (admitted devices) + 4 store calls: each Admit call but the one that
// finds the window closed admits or confirms at least one device, plus one
// read when closed, one before the window opens, and one seal and read
// after it ends. No lock is held across a store call. After a store error
// the window admits no one new for a second instead of queueing calls.
type Admissions struct {
	store   mds.AdmissionStore
	now     func() time.Time
	onError func(error)
	mu      sync.Mutex
	windows map[int64]*window
}

type window struct {
	lastUse atomic.Int64 // Unix seconds; windows unused for a day are forgotten
	mu      sync.Mutex
	spec    mds.Window          // the window this state is for; an edit resets what was concluded
	known   map[uint64]struct{} // gray.Hash of devices the store said are admitted
	closed  bool                // the store refused a device: nothing more gets in under spec
	settled phase               // known is the whole admitted set for this phase (closed counts as any)
	retryAt time.Time           // after a store error, no store calls until then
	pending []*batch            // devices waiting for the next Admit calls, at most maxBatch a call
	calling bool                // an Admit call is in flight
	reading chan struct{}       // closed when the full read in flight ends
}

// complete reports whether known is the whole admitted set as of phase p.
// A window closed to new admissions (full, or sealed by another node) has
// its final set, whatever the phase.
func (w *window) complete(p phase) bool {
	return w.settled == p || w.closed && w.settled == open
}

// batch is the devices of one Admit call, asked under one window spec,
// and, once done is closed, its answer.
type batch struct {
	spec    mds.Window
	devices []string
	hashes  []uint64
	ok      []bool
	done    chan struct{}
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

// NewAdmissions returns admissions backed by store, on clock now; onError
// hears of store failures, during which devices are not admitted.
func NewAdmissions(store mds.AdmissionStore, now func() time.Time, onError func(error)) *Admissions {
	if now == nil {
		now = time.Now
	}
	return &Admissions{store: store, now: now, onError: onError, windows: map[int64]*window{}}
}

const (
	storeTimeout = 2 * time.Second
	retryAfter   = time.Second
	forgetAfter  = 24 * time.Hour
	// maxBatch bounds the devices of one Admit call, and so its statement.
	maxBatch = 256
)

func (a *Admissions) window(task int64) *window {
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	w, ok := a.windows[task]
	if !ok {
		// Creating a window is rare; it is when old ones are forgotten, so
		// the map holds only windows checked in the last day.
		cutoff := now - int64(forgetAfter/time.Second)
		for id, old := range a.windows {
			if old.lastUse.Load() < cutoff {
				delete(a.windows, id)
			}
		}
		w = &window{known: map[uint64]struct{}{}}
		a.windows[task] = w
	}
	w.lastUse.Store(now)
	return w
}

// sync resets what was concluded under another spec (an edit of the
// task's cap or times): known admissions stand, completeness does not.
// Called with w.mu held.
func (w *window) sync(spec *mds.Window) {
	if w.spec != *spec {
		w.spec, w.closed, w.settled = *spec, false, unsettled
	}
}

func (w *window) has(h uint64) bool {
	_, ok := w.known[h]
	return ok
}

// Admit implements gray.Admitter; checks call it while the window is open.
func (a *Admissions) Admit(task int64, spec *mds.Window, device string, now time.Time) bool {
	w := a.window(task)
	h := gray.Hash(device)
	w.mu.Lock()
	for {
		w.sync(spec)
		switch {
		case w.has(h):
			w.mu.Unlock()
			return true
		case w.closed && w.complete(open), a.now().Before(w.retryAt):
			w.mu.Unlock()
			return false
		case w.closed:
			// Closed, and the full read has not finished: wait for it, or
			// make it, then answer from memory.
			if !a.readAll(task, w, spec, open) {
				w.mu.Unlock()
				return false
			}
			continue
		}
		break
	}
	var b *batch
	i := -1
	for _, p := range w.pending {
		if i = slices.Index(p.hashes, h); i >= 0 && p.spec == *spec {
			b = p
			break
		}
	}
	if b == nil {
		if n := len(w.pending); n > 0 && len(w.pending[n-1].devices) < maxBatch && w.pending[n-1].spec == *spec {
			b = w.pending[n-1]
		} else {
			b = &batch{spec: *spec, done: make(chan struct{})}
			w.pending = append(w.pending, b)
		}
		i = len(b.devices)
		// The batch may outlive this check's memory (the check path reuses
		// the body a device ID points into): it keeps a copy.
		b.devices, b.hashes = append(b.devices, strings.Clone(device)), append(b.hashes, h)
	}
	var first *batch
	if !w.calling {
		w.calling = true
		first, w.pending = w.pending[0], w.pending[1:]
	}
	w.mu.Unlock()
	if first != nil {
		a.call(task, w, now, first)
	}
	<-b.done
	return b.ok[i]
}

// call answers batch b and hands the next waiting batch, if any, to a
// goroutine of its own, so that no check waits for more than its own call
// and the one in flight before it.
func (a *Admissions) call(task int64, w *window, now time.Time, b *batch) {
	a.answer(task, w, now, b)
	w.mu.Lock()
	var next *batch
	if len(w.pending) > 0 {
		next, w.pending = w.pending[0], w.pending[1:]
	} else {
		w.calling = false
	}
	w.mu.Unlock()
	if next != nil {
		go a.call(task, w, a.now(), next)
	}
}

// answer answers b from memory if the window closed meanwhile under b's
// spec, and with an Admit call otherwise. The spec is the batch's own: a
// batch queued before an edit must not take the window back to what it
// was, nor one after it be answered as before.
func (a *Admissions) answer(task int64, w *window, now time.Time, b *batch) {
	defer close(b.done)
	spec := &b.spec
	b.ok = make([]bool, len(b.devices))
	w.mu.Lock()
	if w.spec == *spec && w.closed && w.complete(open) || a.now().Before(w.retryAt) {
		for i, h := range b.hashes {
			b.ok[i] = w.has(h)
		}
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	ok, err := a.store.Admit(ctx, mds.Admission{TaskID: task, Devices: b.devices, At: now})
	cancel()
	if err == nil && len(ok) != len(b.devices) {
		err = fmt.Errorf("admissions: the store answered %d devices of %d", len(ok), len(b.devices))
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	refused := false
	for i, in := range ok {
		if in {
			w.known[b.hashes[i]] = struct{}{}
		} else {
			refused = true
		}
	}
	copy(b.ok, ok)
	if refused && w.spec == *spec {
		// Nothing more gets in under spec. Learn who got in on other
		// nodes, once, before anyone is answered from memory.
		w.closed = true
		a.readAll(task, w, spec, open)
	}
}

// Admitted implements gray.Admitter: checks outside the window and
// explanations call it. Outside the window the set is read once per phase
// (after sealing it, past the end) and answered from memory after; inside
// it, explanations ask the store about the one device.
func (a *Admissions) Admitted(task int64, spec *mds.Window, device string, now time.Time) (bool, int) {
	w := a.window(task)
	h := gray.Hash(device)
	p := phaseOf(spec, now)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sync(spec)
	for p != open && !w.has(h) && !w.complete(p) && !a.now().Before(w.retryAt) {
		if !a.readAll(task, w, spec, p) {
			break
		}
		w.sync(spec)
	}
	if p != open || w.has(h) || w.complete(open) {
		return w.has(h), len(w.known)
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	ok, n, err := a.store.AdmissionStatus(ctx, task, device)
	cancel()
	w.mu.Lock()
	if err != nil {
		a.failLocked(w, err)
		return w.has(h), len(w.known)
	}
	return ok, n
}

// readAll makes the admitted set complete for phase p (open means: closed
// to new admissions), reading it unless a read is in flight, which it
// waits for instead. It is called and returns with w.mu held, releasing it
// meanwhile, and reports whether the state may have moved, so the caller
// looks again.
func (a *Admissions) readAll(task int64, w *window, spec *mds.Window, p phase) bool {
	if ch := w.reading; ch != nil {
		w.mu.Unlock()
		<-ch
		w.mu.Lock()
		return true
	}
	ch := make(chan struct{})
	w.reading = ch
	w.mu.Unlock()
	var devices []uint64
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	var err error
	if p == after {
		// No node may admit anyone once the seal commits, so what is read
		// next is final, even if another node was admitting a device
		// just before the end.
		err = a.store.SealWindow(ctx, task, spec.End)
	}
	if err == nil {
		err = a.store.Admitted(ctx, task, func(d string) error {
			devices = append(devices, gray.Hash(d))
			return nil
		})
	}
	cancel()
	w.mu.Lock()
	w.reading = nil
	close(ch)
	if err != nil {
		a.failLocked(w, err)
		return false
	}
	for _, h := range devices {
		w.known[h] = struct{}{}
	}
	if w.spec == *spec {
		w.settled = p
	}
	return true
}

func (a *Admissions) fail(w *window, err error) {
	w.mu.Lock()
	a.failLocked(w, err)
	w.mu.Unlock()
}

func (a *Admissions) failLocked(w *window, err error) {
	w.retryAt = a.now().Add(retryAfter)
	if a.onError != nil && err != nil {
		a.onError(err)
	}
}
