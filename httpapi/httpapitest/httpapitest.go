// Package httpapitest runs the whole server stack for tests: the HTTP API
// over a real listener, on SQLite and a blob directory in a temp dir, with
// an admin token and one clock, which the test controls, for the server,
// the store and window admissions alike.
package httpapitest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/localfs"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/sqlite"
)

// AdminToken is the secret of the admin token every test server has.
const AdminToken = "test-admin-secret"

// Server is a running test server.
type Server struct {
	*httptest.Server
	Store mds.Store
	Blobs *localfs.BlobStore
	// AnswerKey is the deployment key that signs answers; a restart or
	// another node over the same store shares it.
	AnswerKey *signing.PrivateKey
	// API is the server's handler, for what tests do beside HTTP (Drain).
	API *httpapi.Server
	// Live is the node's snapshot, for tests of changes made elsewhere.
	Live *delivery.Live
	// Deltas builds the node's offline package deltas, in the background
	// from the start of the test to its end.
	Deltas *offline.Builder
	*Clock
}

// Clock is the one clock of a test server and its store.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Start starts a server and stops it when the test ends. opts may adjust
// the configuration before the server is built.
func Start(tb testing.TB, opts ...func(*httpapi.Config)) *Server {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "mds.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	clock := &Clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	store.Now = clock.Now
	blobs, err := localfs.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { blobs.Close() })
	if err := store.CreateToken(ctx, &mds.Token{Name: "admin", Admin: true, Hash: mds.HashToken(AdminToken)}); err != nil {
		tb.Fatal(err)
	}
	key, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		tb.Fatal(err)
	}
	return start(tb, store, blobs, key, clock, opts)
}

// Restart starts a second server over s's store and blobs, on the same
// clock, with nothing carried over in memory: a restart, or another node.
func (s *Server) Restart(tb testing.TB, opts ...func(*httpapi.Config)) *Server {
	return start(tb, s.Store, s.Blobs, s.AnswerKey, s.Clock, opts)
}

func start(tb testing.TB, store mds.Store, blobs *localfs.BlobStore, key *signing.PrivateKey, clock *Clock, opts []func(*httpapi.Config)) *Server {
	tb.Helper()
	ctx := context.Background()
	s := &Server{Store: store, Blobs: blobs, AnswerKey: key, Clock: clock}
	s.Server = httptest.NewUnstartedServer(nil)
	live := delivery.NewLive(store)
	if err := live.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.Deltas = &offline.Builder{Store: store, Blobs: blobs, Log: log, Refresh: live.Refresh, Poll: 50 * time.Millisecond, Now: clock.Now}
	cfg := httpapi.Config{Store: store, Blobs: blobs, Live: live, Now: clock.Now, PublicURL: "http://" + s.Listener.Addr().String(),
		SpoolDir: blobs.TempDir(), AnswerKeys: []*signing.PrivateKey{key}, Log: log, Deltas: s.Deltas}
	for _, o := range opts {
		o(&cfg)
	}
	s.API, s.Live = httpapi.New(cfg), live
	tb.Cleanup(s.API.Close) // after the HTTP server: cleanups run last first
	if cfg.Deltas != nil {
		bctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); cfg.Deltas.Run(bctx) }()
		tb.Cleanup(func() { stop(); <-done })
	}
	s.Config.Handler = s.API
	s.Server.Start()
	tb.Cleanup(s.Close)
	return s
}

// Now is the time on the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
