package delivery_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
)

// fakeLive serves a LiveSet and counts loads.
type fakeLive struct {
	mu    sync.Mutex
	set   mds.LiveSet
	loads int
	err   error
}

func (f *fakeLive) setRevision(r int64) {
	f.mu.Lock()
	f.set.Revision = r
	f.mu.Unlock()
}

func (f *fakeLive) LoadWhitelist(context.Context, int64, func(string) error) (int64, error) {
	return 0, errors.New("no whitelists here")
}

// LoadLive serves everything, or nothing when since is current.
func (f *fakeLive) LoadLive(_ context.Context, since int64, _ ...int64) (*mds.LiveSet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if since >= f.set.Revision {
		return &mds.LiveSet{Revision: f.set.Revision}, nil
	}
	f.loads++
	set := f.set
	set.Full = true
	return &set, nil
}

func TestLiveRefresh(t *testing.T) {
	ctx := context.Background()
	src := &fakeLive{set: mds.LiveSet{Revision: 1, Apps: []*mds.App{{ID: 1, Key: "k", Platforms: []mds.Platform{mds.Android}}}}}
	l := delivery.NewLive(src)
	if l.Current() != nil {
		t.Fatal("snapshot before first refresh")
	}
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	first := l.Current()
	if first == nil || first.Revision != 1 {
		t.Fatalf("first snapshot = %+v", first)
	}
	if err := l.Refresh(ctx); err != nil || l.Current() != first || src.loads != 1 {
		t.Errorf("refresh at the same revision rebuilt: loads=%d err=%v", src.loads, err)
	}
	src.set.Revision = 2
	if err := l.Refresh(ctx); err != nil || l.Current() == first || l.Current().Revision != 2 {
		t.Errorf("refresh after the revision moved did not swap: %v", err)
	}
	src.set.Revision = 3
	src.err = errors.New("database down")
	if err := l.Refresh(ctx); err == nil || l.Current().Revision != 2 {
		t.Errorf("failed refresh: err=%v, revision %d; want an error and the old snapshot", err, l.Current().Revision)
	}
	if src.loads != 2 || l.BuildTime() <= 0 {
		t.Errorf("%d loads, build time %v; want 2 loads and a build time", src.loads, l.BuildTime())
	}
}

func TestLiveRunHeals(t *testing.T) {
	src := &fakeLive{set: mds.LiveSet{Revision: 1}}
	l := delivery.NewLive(src)
	if err := l.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.setRevision(5) // a write on another node that no message announced
	go l.Run(ctx, time.Millisecond, func(err error) { t.Error(err) })
	deadline := time.Now().Add(10 * time.Second)
	for l.Current().Revision != 5 {
		if time.Now().After(deadline) {
			t.Fatal("polling never picked up the new revision")
		}
		time.Sleep(time.Millisecond)
	}
}

// flakyLists fails the first fail whitelist loads and records what each
// LoadLive was asked to read again.
type flakyLists struct {
	*deliverytest.Load
	fail  atomic.Int32
	again [][]int64
}

func (f *flakyLists) LoadLive(ctx context.Context, since int64, again ...int64) (*mds.LiveSet, error) {
	f.again = append(f.again, again)
	return f.Load.LoadLive(ctx, since, again...)
}

func (f *flakyLists) LoadWhitelist(ctx context.Context, id int64, fn func(string) error) (int64, error) {
	if f.fail.Add(-1) >= 0 {
		return 0, errors.New("connection reset")
	}
	return f.Load.LoadWhitelist(ctx, id, fn)
}

// TestLiveRetriesFailedWhitelists: the tasks a whitelist that failed to
// load left out come back once it loads, though nothing was written: the
// app alone is read again after a wait that doubles while the list keeps
// failing, and not at all once it has loaded.
func TestLiveRetriesFailedWhitelists(t *testing.T) {
	ctx := context.Background()
	load := deliverytest.Gray(3, 100)
	src := &flakyLists{Load: load}
	src.fail.Store(2)
	l := delivery.NewLive(src)
	now := time.Unix(1_800_000_000, 0)
	delivery.SetClock(l, func() time.Time { return now })
	var problems int
	l.OnProblem = func(error) { problems++ }
	refresh := func(after time.Duration) (again []int64) {
		t.Helper()
		now = now.Add(after)
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		return src.again[len(src.again)-1]
	}
	refresh(0)
	if n := l.Current().Offers(); n != 0 || problems == 0 {
		t.Fatalf("with the list failing: %d offers, %d problems; want the tasks left out and said why", n, problems)
	}
	steps := []struct {
		after  time.Duration
		again  []int64
		offers int
	}{
		{0, nil, 0},                  // not due yet: nothing read
		{time.Second, []int64{1}, 0}, // due: read again, fails again
		{time.Second, nil, 0},        // the wait has doubled
		{time.Second, []int64{1}, 3}, // due again: the list loads
		{time.Hour, nil, 3},          // healed: never read again
	}
	for i, st := range steps {
		before := l.Current()
		if got := refresh(st.after); !slices.Equal(got, st.again) {
			t.Errorf("step %d: read again %v, want %v", i, got, st.again)
		}
		if n := l.Current().Offers(); n != st.offers {
			t.Errorf("step %d: %d offers, want %d", i, n, st.offers)
		}
		if st.again == nil && l.Current() != before {
			t.Errorf("step %d: nothing to read, yet the snapshot was rebuilt", i)
		}
	}
	load.Edit(999) // a write elsewhere reads that app alone
	if got := refresh(0); len(got) != 0 || l.Current().Offers() != 3 {
		t.Errorf("after a write to another app: read again %v, %d offers", got, l.Current().Offers())
	}
}
