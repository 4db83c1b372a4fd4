// Package watch keeps the devices that wait on a node for their answer to
// change, and sends each the new answer when, and only when, it changes.
//
// It knows nothing of HTTP or of how answers are made. The transport
// gives each watcher a Sink that writes to its connection, and the hub an
// Evaluate function that says what a watcher should be sent now, if
// anything. The hub decides when to ask: at once for the watchers of the
// apps a new snapshot changed (Changed), every sweep interval for all of
// them (what time alone changes: ramp steps, windows, the answers' signing
// period), and on Add. What Evaluate returns goes out through a bounded
// pool of writers, newest first: a watcher that has not taken its last
// message when a newer one comes gets only the newer one, so nothing is
// buffered per watcher beyond one message, and one whose connection does
// not take a message within the sink's own deadline is dropped.
package watch

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A Sink is a watcher's connection. The hub calls it from one goroutine
// at a time per watcher.
type Sink[M any] interface {
	// Send writes m; it returns within the sink's write deadline, with an
	// error if m could not be written whole, and the hub drops the watcher.
	Send(m *M) error
	// Heartbeat writes something the device ignores, so that idle
	// connections survive proxies and dead ones are found.
	Heartbeat() error
	// Reconnect tells the device to come back after the given delay, to
	// another node, and closes the connection.
	Reconnect(after time.Duration)
	// Close closes the connection.
	Close()
}

// Watcher is one device waiting for its answer to change.
type Watcher[M any] struct {
	App  int64   // the app whose changes concern it
	Sink Sink[M] // where its messages go
	// State is the transport's: what it evaluates the watcher by, and
	// what it last sent. Only Evaluate touches it, under the watcher's
	// lock, never for two evaluations at once.
	State any

	evalMu    sync.Mutex
	evaluated time.Time // when it was last evaluated, under evalMu
	sendMu    sync.Mutex
	pending   atomic.Pointer[M] // the newest message not yet sent
	queued    atomic.Bool       // in the writers' queue
	beat      atomic.Bool       // a heartbeat is due
	gone      atomic.Bool       // removed: nothing more is sent
	lastOut   atomic.Int64      // unix nanoseconds of the last write
}

// Errors of Add.
var (
	ErrFull     = errors.New("watch: this node holds its maximum of watchers")
	ErrDraining = errors.New("watch: this node is shutting down")
)

// Config tunes a hub. The zero value of a field takes its default.
type Config struct {
	// Max is how many watchers the hub holds; Add refuses more.
	Max int
	// Writers is how many messages are written at once.
	Writers int
	// Sweep is how often every watcher is evaluated, for what changes
	// with time alone.
	Sweep time.Duration
	// Heartbeat is how long a connection may stay silent.
	Heartbeat time.Duration
	// Now is the clock watchers are evaluated at; time.Now by default.
	Now func() time.Time
	// OnPass hears how long each evaluation pass took, and of how many
	// watchers; for metrics.
	OnPass func(d time.Duration, evaluated int)
	// OnDrop hears of each watcher dropped because its connection did not
	// take a message; for metrics.
	OnDrop func()
}

// Defaults of Config.
const (
	DefaultMax       = 10_000
	DefaultSweep     = 10 * time.Second
	DefaultHeartbeat = 25 * time.Second
)

// Hub holds a node's watchers.
type Hub[M any] struct {
	cfg      Config
	evaluate func(w *Watcher[M], now time.Time) *M

	mu       sync.Mutex
	apps     map[int64]map[*Watcher[M]]struct{}
	count    int
	draining bool
	changed  map[int64]struct{} // apps changed since the last pass
	all      bool               // every app changed

	wake chan struct{}
	// queue holds the watchers with something to write, each once (its
	// queued flag); a removed one leaves it when a writer takes it.
	qmu    sync.Mutex
	queue  []*Watcher[M]
	queued chan struct{} // signalled when queue is not empty
	sent   atomic.Int64
}

// New returns a hub that asks evaluate what a watcher should be sent now:
// nil when nothing changed for it since what it was last sent.
func New[M any](cfg Config, evaluate func(w *Watcher[M], now time.Time) *M) *Hub[M] {
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 16 * runtime.GOMAXPROCS(0)
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hub[M]{cfg: cfg, evaluate: evaluate, apps: map[int64]map[*Watcher[M]]struct{}{},
		changed: map[int64]struct{}{}, wake: make(chan struct{}, 1), queued: make(chan struct{}, 1)}
}

// Len is how many watchers the hub holds.
func (h *Hub[M]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Sent is how many messages the hub has written.
func (h *Hub[M]) Sent() int64 { return h.sent.Load() }

// Room reports whether Add would take one more watcher now: ErrFull,
// ErrDraining, or nil.
func (h *Hub[M]) Room() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.draining:
		return ErrDraining
	case h.count >= h.cfg.Max:
		return ErrFull
	}
	return nil
}

// Add registers w and evaluates it at once: whatever it should be sent
// now is on its way when Add returns. It refuses w when the hub is full
// or draining.
func (h *Hub[M]) Add(w *Watcher[M]) error {
	h.mu.Lock()
	switch {
	case h.draining:
		h.mu.Unlock()
		return ErrDraining
	case h.count >= h.cfg.Max:
		h.mu.Unlock()
		return ErrFull
	}
	set := h.apps[w.App]
	if set == nil {
		set = map[*Watcher[M]]struct{}{}
		h.apps[w.App] = set
	}
	set[w] = struct{}{}
	h.count++
	h.mu.Unlock()
	w.lastOut.Store(h.cfg.Now().UnixNano())
	h.pass1(w, h.cfg.Now())
	return nil
}

// Remove forgets w: it is sent nothing more, and once Remove returns no
// evaluation reads its State. Its connection is the caller's to close.
func (h *Hub[M]) Remove(w *Watcher[M]) { h.remove(w) }

// remove is Remove that reports whether w was held.
func (h *Hub[M]) remove(w *Watcher[M]) bool {
	if w.gone.Swap(true) {
		return false
	}
	h.mu.Lock()
	if set := h.apps[w.App]; set != nil {
		if _, held := set[w]; held {
			delete(set, w)
			h.count--
		}
		if len(set) == 0 {
			delete(h.apps, w.App)
		}
	}
	h.mu.Unlock()
	// Wait out an evaluation under way; the next one sees gone.
	w.evalMu.Lock()
	w.evalMu.Unlock()
	return true
}

// drop removes w and closes its connection.
func (h *Hub[M]) drop(w *Watcher[M]) {
	if !h.remove(w) {
		return
	}
	w.Sink.Close()
	if h.cfg.OnDrop != nil {
		h.cfg.OnDrop()
	}
}

// Changed tells the hub that the answers of apps may have changed; the
// watchers of those apps are evaluated as soon as the pass under way, if
// any, ends. With no apps, every watcher is.
func (h *Hub[M]) Changed(apps ...int64) {
	h.mu.Lock()
	if len(apps) == 0 {
		h.all = true
	}
	for _, id := range apps {
		h.changed[id] = struct{}{}
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Run evaluates and writes until done is closed: passes for changes,
// sweeps, heartbeats. Then it closes every watcher's connection, and
// refuses new ones.
func (h *Hub[M]) Run(done <-chan struct{}) {
	var writers sync.WaitGroup
	for range h.cfg.Writers {
		writers.Go(func() { h.write(done) })
	}
	defer func() {
		writers.Wait()
		h.Refuse()
		for _, w := range h.watchers(nil) {
			if h.remove(w) {
				w.Sink.Close()
			}
		}
	}()
	sweep := time.NewTicker(h.cfg.Sweep)
	defer sweep.Stop()
	beat := time.NewTicker(h.cfg.Heartbeat / 4)
	defer beat.Stop()
	for {
		select {
		case <-done:
			return
		case <-h.wake:
			h.mu.Lock()
			changed := h.changed
			if h.all {
				changed = nil // every app
			}
			h.all, h.changed = false, map[int64]struct{}{}
			h.mu.Unlock()
			h.pass(h.watchers(changed))
		case <-sweep.C:
			h.pass(h.watchers(nil))
		case <-beat.C:
			h.heartbeats()
		}
	}
}

// watchers returns the watchers of apps, or all with apps nil.
func (h *Hub[M]) watchers(apps map[int64]struct{}) []*Watcher[M] {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Watcher[M]
	add := func(set map[*Watcher[M]]struct{}) {
		for w := range set {
			out = append(out, w)
		}
	}
	if apps == nil {
		out = make([]*Watcher[M], 0, h.count)
		for _, set := range h.apps {
			add(set)
		}
		return out
	}
	for id := range apps {
		add(h.apps[id])
	}
	return out
}

// pass evaluates ws, spread over the CPUs, and queues what changed.
func (h *Hub[M]) pass(ws []*Watcher[M]) {
	if len(ws) == 0 {
		return
	}
	start := h.cfg.Now()
	workers := min(runtime.GOMAXPROCS(0), (len(ws)+255)/256)
	// Each watcher is evaluated at the clock when its turn comes, never
	// earlier than an evaluation that ran meanwhile (Add's).
	var wg sync.WaitGroup
	for i := range workers {
		part := ws[i*len(ws)/workers : (i+1)*len(ws)/workers]
		wg.Go(func() {
			for _, w := range part {
				h.pass1(w, h.cfg.Now())
			}
		})
	}
	wg.Wait()
	if h.cfg.OnPass != nil {
		h.cfg.OnPass(h.cfg.Now().Sub(start), len(ws))
	}
}

// pass1 evaluates w and queues what it should be sent, if anything.
func (h *Hub[M]) pass1(w *Watcher[M], now time.Time) {
	w.evalMu.Lock()
	if w.gone.Load() {
		w.evalMu.Unlock()
		return
	}
	if now.Before(w.evaluated) {
		now = w.evaluated // the clock read before the lock: never go back
	}
	w.evaluated = now
	m := h.evaluate(w, now)
	if m != nil {
		w.pending.Store(m)
	}
	w.evalMu.Unlock()
	if m != nil {
		h.enqueue(w)
	}
}

func (h *Hub[M]) enqueue(w *Watcher[M]) {
	if w.gone.Load() || w.queued.Swap(true) {
		return
	}
	h.qmu.Lock()
	h.queue = append(h.queue, w)
	h.qmu.Unlock()
	h.signal()
}

func (h *Hub[M]) signal() {
	select {
	case h.queued <- struct{}{}:
	default:
	}
}

// dequeue takes the next watcher to write to, or nil.
func (h *Hub[M]) dequeue() *Watcher[M] {
	h.qmu.Lock()
	defer h.qmu.Unlock()
	if len(h.queue) == 0 {
		return nil
	}
	w := h.queue[0]
	h.queue[0] = nil
	h.queue = h.queue[1:]
	if len(h.queue) == 0 {
		h.queue = nil // let the array go once drained
	} else {
		h.signal() // more for another writer
	}
	return w
}

// write sends queued messages until done is closed.
func (h *Hub[M]) write(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-h.queued:
			for w := h.dequeue(); w != nil; w = h.dequeue() {
				h.send(w)
			}
		}
	}
}

// send writes what w has pending: its newest message, else a heartbeat.
func (h *Hub[M]) send(w *Watcher[M]) {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	w.queued.Store(false)
	if w.gone.Load() {
		return
	}
	var err error
	if m := w.pending.Swap(nil); m != nil {
		w.beat.Store(false)
		if err = w.Sink.Send(m); err == nil {
			h.sent.Add(1)
		}
	} else if w.beat.Swap(false) {
		err = w.Sink.Heartbeat()
	} else {
		return
	}
	if err != nil {
		h.drop(w)
		return
	}
	w.lastOut.Store(h.cfg.Now().UnixNano())
}

// heartbeats queues a heartbeat for every watcher silent for most of the
// heartbeat interval.
func (h *Hub[M]) heartbeats() {
	due := h.cfg.Now().Add(-h.cfg.Heartbeat * 3 / 4).UnixNano()
	for _, w := range h.watchers(nil) {
		if w.lastOut.Load() <= due {
			w.beat.Store(true)
			h.enqueue(w)
		}
	}
}

// Draining reports whether the hub refuses new watchers for good: it was
// told to (Refuse, Drain) or has stopped.
func (h *Hub[M]) Draining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// Refuse refuses new watchers from now on; those held stay.
func (h *Hub[M]) Refuse() {
	h.mu.Lock()
	h.draining = true
	h.mu.Unlock()
}

// Drain refuses new watchers from now on and tells every watcher held to
// reconnect, each after a delay drawn evenly from [0, spread), so that
// they come back to the other nodes spread out rather than at once. It
// returns once every watcher was told.
func (h *Hub[M]) Drain(spread time.Duration) {
	h.Refuse()
	ws := h.watchers(nil)
	var wg sync.WaitGroup
	next := make(chan *Watcher[M])
	for range min(h.cfg.Writers, max(len(ws), 1)) {
		wg.Go(func() {
			for w := range next {
				w.sendMu.Lock()
				if h.remove(w) {
					var after time.Duration
					if spread > 0 {
						after = rand.N(spread)
					}
					w.Sink.Reconnect(after)
				}
				w.sendMu.Unlock()
			}
		})
	}
	for _, w := range ws {
		next <- w
	}
	close(next)
	wg.Wait()
}
