package delivery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Live keeps the current snapshot and replaces it when the store's revision
// moves, recompiling only the apps that changed. Checks read it with one
// atomic load; rebuilding never blocks them.
type Live struct {
	// OnProblem hears of tasks a rebuild had to leave out; set it before
	// the first Refresh.
	OnProblem func(error)
	// OnSwap hears, after each new snapshot is in use, the IDs of the
	// apps whose part it changed, added or removed; all is set when every
	// app's part may have (a full load). It is called with the rebuild's
	// lock held, so it must return at once: it hands the news on. Set it
	// before Refresh may run concurrently (httpapi.New sets it, before the
	// node polls or listens).
	OnSwap func(apps []int64, all bool)

	src  mds.LiveStore
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex   // serialises rebuilds, so concurrent Refresh calls coalesce
	took atomic.Int64 // nanoseconds the last swap took to load and compile
	now  func() time.Time
	// again holds, under mu, the apps whose whitelists failed to load into
	// the current snapshot, and when to read them again: a Refresh after
	// that reads them whether or not anything was written, so a passing
	// failure heals by itself, and a lasting one is retried ever less often.
	again map[int64]retry

	// served counts, per blob, the apps of the current snapshot whose live
	// tasks deliver it. It is kept beside the snapshot rather than in it,
	// so that a write to one app updates the counts of that app's blobs
	// instead of copying those of every app.
	servedMu sync.RWMutex
	served   map[string]int32
}

// NewLive returns a Live over src. It holds no snapshot until the first
// Refresh succeeds.
func NewLive(src mds.LiveStore) *Live {
	return &Live{src: src, served: map[string]int32{}, now: time.Now, again: map[int64]retry{}}
}

// retry is when to read an app again, and the wait that led there.
type retry struct {
	at   time.Time
	wait time.Duration
}

const (
	firstRetry, lastRetry = time.Second, time.Minute
	// retriesPerRefresh bounds the apps one Refresh reads again; it is
	// below the count past which a store reads everything (sqlstore's
	// maxChanged), so retrying never costs a full load.
	retriesPerRefresh = 50
)

// due returns the apps to read again at now, at most retriesPerRefresh.
func (l *Live) due(now time.Time) []int64 {
	var ids []int64
	for id, r := range l.again {
		if !r.at.After(now) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // a stable order: each retried app waits longer before its next turn
	return ids[:min(len(ids), retriesPerRefresh)]
}

// schedule records, after set was read and compiled at now, which of its
// apps failed to load a whitelist: each is read again after a wait that
// doubles from firstRetry to lastRetry while it keeps failing. Apps of set
// that did not fail (they loaded, or were deleted) are done with.
func (l *Live) schedule(set *mds.LiveSet, failed []int64, now time.Time) {
	next := make(map[int64]retry, len(failed))
	for _, id := range failed {
		wait := firstRetry
		if r, ok := l.again[id]; ok {
			wait = min(2*r.wait, lastRetry)
		}
		next[id] = retry{at: now.Add(wait), wait: wait}
	}
	if set.Full {
		clear(l.again) // set held every app: what did not fail is done
	}
	for _, id := range set.Changed {
		delete(l.again, id)
	}
	for _, a := range set.Apps {
		delete(l.again, a.ID)
	}
	maps.Copy(l.again, next)
}

// Serves reports whether a live task of the current snapshot delivers the
// blob sum. Devices can download only those: an upload nobody released,
// or a release that was stopped, is not reachable by its digest.
func (l *Live) Serves(sum string) bool {
	l.servedMu.RLock()
	defer l.servedMu.RUnlock()
	return l.served[sum] > 0
}

// count adds by to the count of every blob of apps.
func (l *Live) count(apps []*appState, by int32) {
	l.servedMu.Lock()
	defer l.servedMu.Unlock()
	for _, as := range apps {
		for _, sum := range as.blobs {
			if l.served[sum] += by; l.served[sum] <= 0 {
				delete(l.served, sum)
			}
		}
	}
}

// Current returns the snapshot in use, or nil before the first load.
func (l *Live) Current() *Snapshot { return l.cur.Load() }

// BuildTime is how long loading and compiling the current snapshot took.
func (l *Live) BuildTime() time.Duration { return time.Duration(l.took.Load()) }

// Refresh brings the snapshot up to the store's revision, if the store has
// moved past it: it loads the apps changed since (everything, the first
// time or when the store cannot say what changed) and recompiles those;
// and, revision moved or not, the apps whose whitelists failed to load
// that are due to be read again. Writers call it after committing, so
// their change is visible to the next check on this node; Run and Heard
// call it for changes made elsewhere.
func (l *Live) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.cur.Load()
	var since int64
	if cur != nil {
		since = cur.Revision
	}
	start := time.Now()
	now := l.now()
	due := l.due(now)
	set, err := l.src.LoadLive(ctx, since, due...)
	if err != nil {
		return fmt.Errorf("load live tasks: %w", err)
	}
	// A store behind the snapshot (a restored or failed-over database) is
	// not followed backwards; it is read again once it has caught up.
	if cur != nil && (set.Revision < cur.Revision || set.Revision == cur.Revision && len(due) == 0) {
		return nil
	}
	lists, problems, failed := l.loadLists(ctx, set, cur)
	l.schedule(set, failed, now)
	s, added, dropped := cur.apply(set, lists)
	s.Problems = append(problems, s.Problems...)
	for _, p := range s.Problems {
		if l.OnProblem != nil {
			l.OnProblem(p)
		}
	}
	// A blob is served from before the first answer that names it until
	// after the last one that did is gone.
	l.count(added, 1)
	l.cur.Store(s)
	l.count(dropped, -1)
	l.took.Store(int64(time.Since(start)))
	if l.OnSwap != nil {
		ids := make([]int64, 0, len(added)+len(dropped))
		for _, as := range slices.Concat(added, dropped) {
			ids = append(ids, as.app.ID)
		}
		slices.Sort(ids)
		l.OnSwap(slices.Compact(ids), set.Full || cur == nil)
	}
	return nil
}

// Heard is told of a change announced by another node, or of the zero
// Change when changes may have been missed. It refreshes unless the
// snapshot already includes the change (a node hears its own writes too).
func (l *Live) Heard(ctx context.Context, c mds.Change) error {
	if cur := l.cur.Load(); c.Revision > 0 && cur != nil && cur.Revision >= c.Revision {
		return nil
	}
	return l.Refresh(ctx)
}

// loadLists returns the compiled whitelists the live tasks of set use:
// those of cur whose version stands, so that editing a task next to a
// million-entry whitelist does not reload it, and the others loaded from
// the store. A list that fails to load keeps its version in cur if there
// is one; otherwise the tasks using it are left out of the snapshot
// (Compile reports them), and every other app carries on. Either way its
// app is in failed, to be read again.
func (l *Live) loadLists(ctx context.Context, set *mds.LiveSet, cur *Snapshot) (lists map[int64]*gray.List, problems []error, failed []int64) {
	used := map[int64]bool{}
	for _, t := range set.Tasks {
		for _, id := range t.Targeting.Whitelists {
			used[id] = true
		}
	}
	lists = map[int64]*gray.List{}
	for _, w := range set.Whitelists {
		if !used[w.ID] {
			continue
		}
		prev := cur.list(w.AppID, w.ID)
		if prev != nil && prev.Version >= w.Version {
			lists[w.ID] = prev
			continue
		}
		b := gray.NewListBuilder(w, w.Entries)
		version, err := l.src.LoadWhitelist(ctx, w.ID, b.Add)
		if err != nil {
			problems = append(problems, fmt.Errorf("load whitelist %d (version %d): %w", w.ID, w.Version, err))
			if prev != nil {
				lists[w.ID] = prev
			}
			if !slices.Contains(failed, w.AppID) {
				failed = append(failed, w.AppID)
			}
			continue
		}
		list := b.Build()
		list.Version = version // what was read, which may be newer than set
		lists[w.ID] = list
	}
	return lists, problems, failed
}

// Run refreshes every interval until ctx ends, so a node hears of writes made
// elsewhere even if no message tells it. Failures keep the old snapshot:
// devices keep getting the last good answers while the store is away.
func (l *Live) Run(ctx context.Context, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := l.Refresh(ctx); err != nil && ctx.Err() == nil && onError != nil {
				onError(err)
			}
		}
	}
}
