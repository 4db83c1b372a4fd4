package sdk_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/watch"
)

// watching runs c.Watch, applying every answer, until the test ends; it
// returns the results as they come.
func watching(t *testing.T, c *sdk.Client, cfg sdk.WatchConfig) <-chan sdk.Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan sdk.Result, 100)
	var done sync.WaitGroup
	done.Go(func() {
		err := c.Watch(ctx, cfg, func(a *sdk.Answer) error {
			r, err := c.Apply(ctx, a)
			if err != nil {
				return err
			}
			results <- r
			return nil
		}, func(err error) { t.Logf("watch: %v", err) })
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Watch: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); done.Wait() })
	return results
}

func next(t *testing.T, results <-chan sdk.Result) sdk.Result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no answer within 15 s")
	}
	return sdk.Result{}
}

// TestWatchRollback: a device watching is told of a rollback within a
// second, without checking, and goes back to its previous patch; a
// device beside it that never ran the patch is told nothing.
func TestWatchRollback(t *testing.T) {
	w := newWorld(t)
	tester, other := w.device("tester", "2.1.0", ""), w.device("other", "2.0.0", "")
	p1 := w.push(w.team, 1)
	w.release(p1)
	mustUpdate(t, tester)
	p2 := w.push(w.team, 2)
	t2 := w.release(p2)
	mustUpdate(t, tester)
	for _, c := range []*sdk.Client{tester, other} {
		if _, err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.MarkHealthy(); err != nil {
			t.Fatal(err)
		}
	}
	runs(t, tester, p2)

	results, others := watching(t, tester, sdk.WatchConfig{}), watching(t, other, sdk.WatchConfig{})
	if r := next(t, results); r.Outcome != sdk.OutcomeNothing {
		t.Fatalf("first answer of the watch: %+v", r)
	}
	if r := next(t, others); r.Outcome != sdk.OutcomeNothing {
		t.Fatalf("first answer of the other watch: %+v", r)
	}
	began := time.Now()
	w.act(t2, mds.ActionRollback)
	r := next(t, results)
	took := time.Since(began)
	if r.Outcome != sdk.OutcomeRolledBack || r.Patch == nil || r.Patch.ID != p1.ID {
		t.Fatalf("after the rollback the watching device did %+v", r)
	}
	if took > time.Second {
		t.Errorf("the rollback reached the watching device after %s", took)
	}
	t.Logf("rollback reached the watching device in %s", took)
	runs(t, tester, p1)
	select {
	case r := <-others:
		t.Errorf("a device that never ran the patch was sent %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWatchFallsBack: when the node cannot take a watcher, the SDK checks
// instead, and watches once it can.
func TestWatchFallsBack(t *testing.T) {
	w := newWorld(t, func(c *httpapi.Config) { c.Watch = watch.Config{Max: 1} })
	first, second := w.device("first", "2.1.0", ""), w.device("second", "2.1.0", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	firstDone := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		firstDone <- first.Watch(ctx, sdk.WatchConfig{}, func(*sdk.Answer) error {
			select {
			case got <- struct{}{}:
			default:
			}
			return nil
		}, nil)
	}()
	<-got // the node is full now
	results := watching(t, second, sdk.WatchConfig{FirstBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, FallbackAfter: 2})
	if r := next(t, results); r.Outcome != sdk.OutcomeNothing {
		t.Fatalf("the fallback check: %+v", r)
	}
	cancel() // room for the second
	<-firstDone
	p := w.push(w.team, 1)
	w.release(p)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := next(t, results)
		if r.Outcome == sdk.OutcomeApplied {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the released patch never reached the second device")
		}
	}
	runs(t, second, p)
}
