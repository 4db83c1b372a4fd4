package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
)

// Live keeps the current snapshot and replaces it when the store's revision
// moves. Checks read it with one atomic load; rebuilding never blocks them.
type Live struct {
	// OnProblem hears of tasks a rebuild had to leave out; set it before
	// the first Refresh.
	OnProblem func(error)

	src  mds.LiveStore
	cur  atomic.Pointer[Snapshot]
	mu   sync.Mutex   // serialises rebuilds, so concurrent Refresh calls coalesce
	took atomic.Int64 // nanoseconds the last swap took to load and compile
	// lists caches compiled whitelists by ID across rebuilds; an entry is
	// reused while its version stands, so editing a task next to a million-
	// entry whitelist does not reload it. Guarded by mu.
	lists map[int64]*gray.List
}

// NewLive returns a Live over src. It holds no snapshot until the first
// Refresh succeeds.
func NewLive(src mds.LiveStore) *Live {
	return &Live{src: src, lists: map[int64]*gray.List{}}
}

// Current returns the snapshot in use, or nil before the first load.
func (l *Live) Current() *Snapshot { return l.cur.Load() }

// BuildTime is how long loading and compiling the current snapshot took.
func (l *Live) BuildTime() time.Duration { return time.Duration(l.took.Load()) }

// Refresh rebuilds the snapshot if the store has moved past it. Writers call
// it after committing, so their change is visible to the next check on this
// node; Run calls it for changes made on other nodes.
func (l *Live) Refresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.cur.Load()
	if cur != nil {
		rev, err := l.src.Revision(ctx)
		if err != nil {
			return fmt.Errorf("read revision: %w", err)
		}
		if rev <= cur.Revision {
			return nil
		}
	}
	start := time.Now()
	set, err := l.src.LoadLive(ctx)
	if err != nil {
		return fmt.Errorf("load live tasks: %w", err)
	}
	problems := l.loadLists(ctx, set)
	s, err := Compile(set, l.lists)
	if err != nil {
		return err
	}
	if cur != nil && s.Revision <= cur.Revision {
		return nil
	}
	s.Problems = append(problems, s.Problems...)
	for _, p := range s.Problems {
		if l.OnProblem != nil {
			l.OnProblem(p)
		}
	}
	l.cur.Store(s)
	l.took.Store(int64(time.Since(start)))
	return nil
}

// loadLists brings the whitelist cache up to the versions in set, loading
// only lists that live tasks use and that changed, and dropping the rest.
// A list that fails to load keeps its previous version if there is one;
// otherwise the tasks using it are left out of the snapshot (Compile
// reports them), and every other app carries on.
func (l *Live) loadLists(ctx context.Context, set *mds.LiveSet) []error {
	used := map[int64]bool{}
	for _, t := range set.Tasks {
		for _, id := range t.Targeting.Whitelists {
			used[id] = true
		}
	}
	for id := range l.lists {
		if !used[id] {
			delete(l.lists, id)
		}
	}
	var problems []error
	for _, w := range set.Whitelists {
		if !used[w.ID] {
			continue
		}
		if cached, ok := l.lists[w.ID]; ok && cached.Version >= w.Version {
			continue
		}
		b := gray.NewListBuilder(w, w.Entries)
		version, err := l.src.LoadWhitelist(ctx, w.ID, b.Add)
		if err != nil {
			problems = append(problems, fmt.Errorf("load whitelist %d (version %d): %w", w.ID, w.Version, err))
			continue
		}
		list := b.Build()
		list.Version = version // what was read, which may be newer than set
		l.lists[w.ID] = list
	}
	return problems
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
