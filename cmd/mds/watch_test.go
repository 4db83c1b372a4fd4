package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/postgres/pgtest"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/signing"
)

// balancer sends each request to the first node whose readyz says ready,
// as a load balancer does.
func balancer(t *testing.T, nodes ...string) *httptest.Server {
	ready := func(base string) bool {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, n := range nodes {
			if ready(n) {
				u, _ := url.Parse(n)
				httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "no node is ready", http.StatusBadGateway)
	}))
	t.Cleanup(lb.Close)
	return lb
}

// TestWatchAcrossNodes: two nodes over one PostgreSQL database. A device
// watching node A hears, within a second, of a release made on node B
// (polling is off: PostgreSQL's notification carries it); then A is sent
// SIGTERM: its readyz fails, it tells the device to reconnect, and exits
// cleanly; the device, through the load balancer, is on B, and B's next
// change reaches it there.
func TestWatchAcrossNodes(t *testing.T) {
	db := pgtest.Schema(t)
	key, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, _ := key.MarshalPEM()
	keyFile := filepath.Join(t.TempDir(), "answer-key.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"MDS_DATABASE_URL=" + db, "MDS_ANSWER_KEYS=" + keyFile, "MDS_POLL_INTERVAL=1h", "MDS_DRAIN_SPREAD=300ms"}
	a := startChild(t, t.TempDir(), env...)
	b := startChild(t, t.TempDir(), env...)
	lb := balancer(t, a.base, b.base)

	resp, body := a.do(t, "POST", "/api/v1/apps", strings.NewReader(`{"slug":"shop","platforms":["android"]}`))
	var app mds.App
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &app) != nil {
		t.Fatalf("create app: %d %s", resp.StatusCode, body)
	}
	dev, err := sdk.Open(t.TempDir(), sdk.Config{Server: lb.URL, ServerKeys: []*signing.PublicKey{key.Public()},
		Device: mds.Device{AppKey: app.Key, Platform: mds.Android, AppVersion: "2.0", DeviceID: "d-1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	answers := make(chan *sdk.Answer, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var watching sync.WaitGroup
	watching.Go(func() {
		err := dev.Watch(ctx, sdk.WatchConfig{}, func(ans *sdk.Answer) error { answers <- ans; return nil }, func(err error) { t.Logf("watch: %v", err) })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch: %v", err)
		}
	})
	defer func() { cancel(); watching.Wait() }()
	next := func(within time.Duration) *sdk.Answer {
		t.Helper()
		select {
		case ans := <-answers:
			return ans
		case <-time.After(within):
			t.Fatalf("no answer within %s", within)
			return nil
		}
	}
	if ans := next(5 * time.Second); ans.Upgrade != nil {
		t.Fatalf("first answer offers %+v", ans.Upgrade)
	}

	// A release on node B reaches the device watching node A.
	resp, body = b.do(t, "POST", "/api/v1/apps/shop/packages", strings.NewReader(`{"platform":"android","version":"3.0","url":"https://example.com/3.apk"}`))
	if resp.StatusCode != 201 {
		t.Fatalf("create package on B: %d %s", resp.StatusCode, body)
	}
	began := time.Now()
	resp, body = b.do(t, "POST", "/api/v1/apps/shop/tasks", strings.NewReader(`{"package_id":1,"mode":"single","release":true}`))
	if resp.StatusCode != 201 {
		t.Fatalf("release on B: %d %s", resp.StatusCode, body)
	}
	ans := next(5 * time.Second)
	if took := time.Since(began); ans.Upgrade == nil || took > time.Second {
		t.Fatalf("the release on B reached the device on A after %s: %+v", took, ans.Upgrade)
	}
	t.Logf("a release on node B reached the device watching node A in %s", time.Since(began))

	// SIGTERM drains A: the device comes back through the balancer to B.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("node A after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node A did not exit after SIGTERM")
	}
	deadline := time.Now().Add(10 * time.Second)
	for watchers(t, b) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the device did not reconnect to node B: %v watchers there", watchers(t, b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, body = b.do(t, "POST", "/api/v1/apps/shop/tasks/1/pause", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("pause on B: %d %s", resp.StatusCode, body)
	}
	for {
		ans := next(5 * time.Second)
		if ans.Upgrade == nil {
			break // the pause, on B
		}
	}
}

// watchers reads mds_watchers from a node's metrics.
func watchers(t *testing.T, c *child) float64 {
	t.Helper()
	_, body := c.do(t, "GET", "/metrics", nil)
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, "mds_watchers "); ok {
			var n float64
			json.Unmarshal([]byte(strings.TrimSpace(v)), &n)
			return n
		}
	}
	t.Fatal("no mds_watchers in /metrics")
	return 0
}
