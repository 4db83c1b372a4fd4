package sdk_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/httpapi/httpapitest"
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
	// The second watches now: the node holds it.
	deadline := time.Now().Add(15 * time.Second)
	for watchers(t, w) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second device never watched")
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := w.push(w.team, 1)
	w.release(p)
	deadline = time.Now().Add(15 * time.Second)
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

// watchers reads mds_watchers off the world's server.
func watchers(t *testing.T, w *world) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", w.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+httpapitest.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "mds_watchers "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n
		}
	}
	t.Fatal("no mds_watchers in /metrics")
	return 0
}

// TestWatchRetriesWhatFailed: an answer the device failed to act on is
// handed again, and acted on then.
func TestWatchRetriesWhatFailed(t *testing.T) {
	w := newWorld(t)
	dev := w.device("tester", "2.1.0", "")
	p := w.push(w.team, 1)
	w.release(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []string
	applied := make(chan sdk.Result, 1)
	done := make(chan error, 1)
	go func() {
		done <- dev.Watch(ctx, sdk.WatchConfig{FirstBackoff: 10 * time.Millisecond}, func(a *sdk.Answer) error {
			mu.Lock()
			seen = append(seen, a.ETag)
			first := len(seen) == 1
			mu.Unlock()
			if first {
				return errors.New("the disk is full")
			}
			r, err := dev.Apply(ctx, a)
			if err == nil && r.Outcome == sdk.OutcomeApplied {
				applied <- r
			}
			return err
		}, nil)
	}()
	select {
	case <-applied:
	case <-time.After(15 * time.Second):
		t.Fatal("the answer that failed was never acted on")
	}
	runs(t, dev, p)
	mu.Lock()
	if len(seen) < 2 || seen[0] != seen[1] {
		t.Errorf("answers handed: %v; want the failed one again", seen)
	}
	mu.Unlock()
	cancel()
	<-done
}
