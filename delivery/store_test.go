package delivery_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/sqlite"
	"github.com/mds-dev/mds/storetest"
)

// countingStore counts the admission calls that reach a real store.
type countingStore struct {
	mds.AdmissionStore
	calls atomic.Int64
}

func (c *countingStore) Admit(ctx context.Context, r mds.Admission) ([]bool, error) {
	c.calls.Add(1)
	return c.AdmissionStore.Admit(ctx, r)
}

func (c *countingStore) SealWindow(ctx context.Context, id int64, end time.Time) error {
	c.calls.Add(1)
	return c.AdmissionStore.SealWindow(ctx, id, end)
}

func (c *countingStore) Admitted(ctx context.Context, id int64, fn func(string) error) error {
	c.calls.Add(1)
	return c.AdmissionStore.Admitted(ctx, id, fn)
}

// TestWindowOnARealStore: two nodes over one SQLite store, 200 devices at
// once at a window of 5. Exactly 5 get in, the nodes agree on every device
// during and after the window, and the store sees the bound of calls.
func TestWindowOnARealStore(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Truncate(time.Second)
	task := storetest.WindowTask(t, s, storetest.MustCreateApp(t, s, "shop"), 5, t0.Add(time.Hour))
	w := task.Targeting.Window
	c := &countingStore{AdmissionStore: s}
	at := func() time.Time { return t0 }
	nodes := []*delivery.Admissions{
		delivery.NewAdmissions(c, at, func(err error) { t.Error(err) }),
		delivery.NewAdmissions(c, at, func(err error) { t.Error(err) }),
	}
	var wg sync.WaitGroup
	var in atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			if nodes[i%2].Admit(task.ID, w, fmt.Sprintf("d%03d", i), t0) {
				in.Add(1)
			}
		})
	}
	wg.Wait()
	if in.Load() != 5 {
		t.Errorf("%d devices admitted, want 5", in.Load())
	}
	if calls := c.calls.Load(); calls > int64(len(nodes)*(5+4)) {
		t.Errorf("%d store calls for two nodes and a cap of 5", calls)
	}
	later := t0.Add(2 * time.Hour)
	n := 0
	for i := range 200 {
		id := fmt.Sprintf("d%03d", i)
		x, _ := nodes[0].Admitted(task.ID, w, id, later)
		y, _ := nodes[1].Admitted(task.ID, w, id, later)
		if x != y {
			t.Errorf("the nodes disagree on %s after the window", id)
		}
		if x {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d admitted after the window, want 5", n)
	}
}

// TestWindowMovedEarlier: the window's end is moved into the past; a node
// that has heard settles and seals, a node that has not still admits by
// the old end. The store decides by the end it holds, so the late
// admission is refused and both nodes agree.
func TestWindowMovedEarlier(t *testing.T) {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().Truncate(time.Second)
	task := storetest.WindowTask(t, s, storetest.MustCreateApp(t, s, "shop"), 100, t0.Add(time.Hour))
	old := *task.Targeting.Window
	moved := old
	moved.End = t0
	if _, err := s.UpdateTask(context.Background(), task.AppID, task.ID, "ops", func(t *mds.Task) (string, error) {
		tg := t.Targeting
		tg.Window = &moved
		return "targeting", t.SetTargeting(tg)
	}); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return t0.Add(time.Millisecond) }
	stale := delivery.NewAdmissions(s, clock, func(err error) { t.Error(err) })
	heard := delivery.NewAdmissions(s, clock, func(err error) { t.Error(err) })
	if in, _ := heard.Admitted(task.ID, &moved, "x", clock()); in {
		t.Fatal("x is in before anyone admitted it")
	}
	if stale.Admit(task.ID, &old, "x", clock()) {
		t.Error("a node that missed the edit admitted a device after the window, as moved, was sealed")
	}
	onStale, _ := stale.Admitted(task.ID, &moved, "x", clock())
	onHeard, _ := heard.Admitted(task.ID, &moved, "x", clock())
	if onStale || onHeard {
		t.Errorf("after the window: x admitted on the stale node %v, on the other %v; want neither", onStale, onHeard)
	}
}
