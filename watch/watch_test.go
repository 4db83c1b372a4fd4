package watch_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds/watch"
)

// msg is what the test hub sends: the value a watcher's source held.
type msg struct{ v int64 }

// sink records what it is sent; a blocked sink takes nothing until its
// deadline passes, as a connection whose device stopped reading.
type sink struct {
	mu        sync.Mutex
	got       []int64
	beats     int
	closed    bool
	reconnect time.Duration
	told      bool
	blocked   bool
	deadline  time.Duration
	arrived   chan struct{}
}

func newSink() *sink { return &sink{arrived: make(chan struct{}, 100)} }

func (k *sink) Send(m *msg) error {
	k.mu.Lock()
	blocked, deadline := k.blocked, k.deadline
	k.mu.Unlock()
	if blocked {
		time.Sleep(deadline)
		return errors.New("write deadline exceeded")
	}
	k.mu.Lock()
	k.got = append(k.got, m.v)
	k.mu.Unlock()
	k.arrived <- struct{}{}
	return nil
}

func (k *sink) Heartbeat() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.beats++
	return nil
}

func (k *sink) Reconnect(after time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.told, k.reconnect, k.closed = true, after, true
}

func (k *sink) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
}

func (k *sink) received() []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]int64(nil), k.got...)
}

// source is what a watcher's answer is computed from: a value per
// watcher, and what the watcher was last sent.
type source struct {
	value atomic.Int64
	sent  int64
	seen  bool
}

func evaluate(w *watch.Watcher[msg], _ time.Time) *msg {
	src := w.State.(*source)
	v := src.value.Load()
	if src.seen && v == src.sent {
		return nil
	}
	src.seen, src.sent = true, v
	return &msg{v: v}
}

type fixture struct {
	hub   *watch.Hub[msg]
	drops atomic.Int64
	done  chan struct{}
	ended sync.WaitGroup
}

func start(t *testing.T, cfg watch.Config) *fixture {
	f := &fixture{done: make(chan struct{})}
	cfg.OnDrop = func() { f.drops.Add(1) }
	f.hub = watch.New(cfg, evaluate)
	f.ended.Go(func() { f.hub.Run(f.done) })
	t.Cleanup(func() {
		close(f.done)
		f.ended.Wait()
	})
	return f
}

func (f *fixture) add(t *testing.T, app int64, k *sink, v int64) *source {
	t.Helper()
	src := &source{}
	src.value.Store(v)
	if err := f.hub.Add(&watch.Watcher[msg]{App: app, Sink: k, State: src}); err != nil {
		t.Fatal(err)
	}
	return src
}

// wait waits for n messages to arrive at k.
func wait(t *testing.T, k *sink, n int) {
	t.Helper()
	for range n {
		select {
		case <-k.arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("a message did not arrive; got %v", k.received())
		}
	}
}

// TestOnlyChangedWatchersHear: a change to an app evaluates its watchers,
// and only those whose value changed are sent it; other apps' watchers
// are not even evaluated.
func TestOnlyChangedWatchersHear(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour})
	sinks := make([]*sink, 10)
	sources := make([]*source, 10)
	for i := range sinks {
		sinks[i] = newSink()
		sources[i] = f.add(t, int64(1+i%2), sinks[i], 100)
		wait(t, sinks[i], 1) // the value at Add
	}
	sources[0].value.Store(101) // app 1
	sources[1].value.Store(102) // app 2, whose change is not announced
	f.hub.Changed(1)
	wait(t, sinks[0], 1)
	time.Sleep(50 * time.Millisecond)
	for i, k := range sinks {
		want := []int64{100}
		if i == 0 {
			want = []int64{100, 101}
		}
		if got := k.received(); !equal(got, want) {
			t.Errorf("watcher %d got %v, want %v", i, got, want)
		}
	}
	f.hub.Changed() // every app
	wait(t, sinks[1], 1)
	if got := sinks[1].received(); !equal(got, []int64{100, 102}) {
		t.Errorf("after a change of every app watcher 1 got %v", got)
	}
	if f.hub.Sent() != 12 {
		t.Errorf("%d messages sent, want 12", f.hub.Sent())
	}
}

// TestNewestMessageWins: a watcher that has not taken its message when a
// newer one comes gets the newer one only, never an older one last.
func TestNewestMessageWins(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour, Writers: 1})
	slow, k := newSink(), newSink()
	slow.blocked, slow.deadline = true, 200*time.Millisecond
	f.add(t, 1, slow, 0) // occupies the only writer for 200 ms, then is dropped
	src := f.add(t, 1, k, 0)
	for v := int64(1); v <= 50; v++ {
		src.value.Store(v)
		f.hub.Changed(1)
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := k.received()
		if len(got) > 0 && got[len(got)-1] == 50 {
			if len(got) > 5 {
				t.Errorf("a watcher behind a busy writer was sent %d messages %v; each newer one replaces the one waiting", len(got), got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Errorf("messages out of order: %v", got)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last value never arrived: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowWatcherDropped: a watcher whose connection does not take a
// message is dropped, and the others are sent theirs meanwhile.
func TestSlowWatcherDropped(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour, Writers: 4})
	slow := newSink()
	slowSrc := f.add(t, 1, slow, 0)
	wait(t, slow, 1)
	slow.mu.Lock()
	slow.blocked, slow.deadline = true, 2*time.Second
	slow.mu.Unlock()
	fast := make([]*sink, 20)
	srcs := make([]*source, 20)
	for i := range fast {
		fast[i] = newSink()
		srcs[i] = f.add(t, 1, fast[i], 0)
		wait(t, fast[i], 1)
	}
	slowSrc.value.Store(1)
	for _, s := range srcs {
		s.value.Store(1)
	}
	began := time.Now()
	f.hub.Changed(1)
	for _, k := range fast {
		wait(t, k, 1)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("the other watchers waited %s for a slow one", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.drops.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.drops.Load() != 1 || f.hub.Len() != 20 {
		t.Errorf("%d dropped, %d held; want the slow watcher dropped and 20 held", f.drops.Load(), f.hub.Len())
	}
	slow.mu.Lock()
	closed := slow.closed
	slow.mu.Unlock()
	if !closed {
		t.Error("the dropped watcher's connection was not closed")
	}
}

// TestCapAndDrain: the hub holds at most Max watchers; Drain tells every
// one to reconnect within the spread and refuses new ones.
func TestCapAndDrain(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour, Max: 3})
	sinks := []*sink{newSink(), newSink(), newSink()}
	for _, k := range sinks {
		f.add(t, 1, k, 0)
	}
	if err := f.hub.Room(); !errors.Is(err, watch.ErrFull) {
		t.Errorf("Room of a full hub: %v", err)
	}
	if err := f.hub.Add(&watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}); !errors.Is(err, watch.ErrFull) {
		t.Errorf("Add to a full hub: %v", err)
	}
	spread := time.Second
	f.hub.Drain(spread)
	for i, k := range sinks {
		k.mu.Lock()
		if !k.told || k.reconnect < 0 || k.reconnect >= spread {
			t.Errorf("watcher %d: told %v to reconnect after %s, want within [0, %s)", i, k.told, k.reconnect, spread)
		}
		k.mu.Unlock()
	}
	if f.hub.Len() != 0 {
		t.Errorf("%d watchers held after draining", f.hub.Len())
	}
	if err := f.hub.Add(&watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}); !errors.Is(err, watch.ErrDraining) {
		t.Errorf("Add to a draining hub: %v", err)
	}
}

// TestHeartbeats: a silent watcher is sent heartbeats; one sent messages
// is not sent heartbeats as well.
func TestHeartbeats(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour, Heartbeat: 100 * time.Millisecond})
	k := newSink()
	f.add(t, 1, k, 0)
	time.Sleep(550 * time.Millisecond)
	k.mu.Lock()
	beats := k.beats
	k.mu.Unlock()
	if beats < 2 || beats > 10 {
		t.Errorf("%d heartbeats in 550 ms at one per 100 ms of silence", beats)
	}
}

// TestSweepEvaluatesEveryone: what changes with time alone reaches
// watchers at the next sweep, with no change announced.
func TestSweepEvaluatesEveryone(t *testing.T) {
	f := start(t, watch.Config{Sweep: 50 * time.Millisecond})
	k := newSink()
	src := f.add(t, 7, k, 0)
	wait(t, k, 1)
	src.value.Store(9)
	wait(t, k, 1)
	if got := k.received(); !equal(got, []int64{0, 9}) {
		t.Errorf("got %v", got)
	}
}

// TestRemoveWaitsForEvaluation: once Remove returns, no evaluation reads
// the watcher's state: its owner may reuse it.
func TestRemoveWaitsForEvaluation(t *testing.T) {
	var inside atomic.Bool
	entered := make(chan struct{})
	hub := watch.New(watch.Config{Sweep: time.Hour}, func(w *watch.Watcher[msg], _ time.Time) *msg {
		if w.State.(*source).value.Load() == 1 {
			inside.Store(true)
			close(entered)
			time.Sleep(100 * time.Millisecond)
			inside.Store(false)
		}
		return nil
	})
	done := make(chan struct{})
	var ended sync.WaitGroup
	ended.Go(func() { hub.Run(done) })
	defer func() { close(done); ended.Wait() }()
	src := &source{}
	w := &watch.Watcher[msg]{App: 1, Sink: newSink(), State: src}
	if err := hub.Add(w); err != nil {
		t.Fatal(err)
	}
	src.value.Store(1)
	hub.Changed(1)
	<-entered
	hub.Remove(w)
	if inside.Load() {
		t.Error("Remove returned while an evaluation of the watcher was under way")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestChurnLosesNothing: watchers that come and go while the writers are
// busy do not crowd out the messages of those that stay; and removing a
// watcher the hub does not hold changes nothing.
func TestChurnLosesNothing(t *testing.T) {
	f := start(t, watch.Config{Sweep: time.Hour, Max: 2, Writers: 1})
	slow := newSink()
	slow.blocked, slow.deadline = true, 300*time.Millisecond
	f.add(t, 1, slow, 0) // the only writer is busy with it, then drops it
	for range 10 {
		w := &watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}
		if err := f.hub.Add(w); err != nil {
			t.Fatal(err)
		}
		f.hub.Remove(w)
	}
	f.hub.Remove(&watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}) // never added
	if n := f.hub.Len(); n != 1 {
		t.Fatalf("%d watchers held, want the slow one alone", n)
	}
	k := newSink()
	f.add(t, 1, k, 7)
	if err := f.hub.Add(&watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}); !errors.Is(err, watch.ErrFull) {
		t.Errorf("a third watcher past a cap of 2: %v", err)
	}
	wait(t, k, 1)
	if got := k.received(); !equal(got, []int64{7}) {
		t.Errorf("got %v", got)
	}
}

// TestRunEndClosesWatchers: when the hub stops, every connection is
// closed and no watcher is taken any more.
func TestRunEndClosesWatchers(t *testing.T) {
	hub := watch.New(watch.Config{Sweep: time.Hour}, evaluate)
	done := make(chan struct{})
	var ended sync.WaitGroup
	ended.Go(func() { hub.Run(done) })
	k := newSink()
	src := &source{}
	if err := hub.Add(&watch.Watcher[msg]{App: 1, Sink: k, State: src}); err != nil {
		t.Fatal(err)
	}
	wait(t, k, 1)
	close(done)
	ended.Wait()
	k.mu.Lock()
	closed := k.closed
	k.mu.Unlock()
	if !closed || hub.Len() != 0 {
		t.Errorf("after Run ended: closed %v, %d held", closed, hub.Len())
	}
	if err := hub.Add(&watch.Watcher[msg]{App: 1, Sink: newSink(), State: &source{}}); !errors.Is(err, watch.ErrDraining) {
		t.Errorf("Add after Run ended: %v", err)
	}
}
