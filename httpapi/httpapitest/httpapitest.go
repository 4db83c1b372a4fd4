// Package httpapitest runs the whole server stack for tests: the HTTP API
// over a real listener, on SQLite and a blob directory in a temp dir, with
// an admin token and a clock the test controls.
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
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/localfs"
	"github.com/mds-dev/mds/release"
	"github.com/mds-dev/mds/sqlite"
)

// AdminToken is the secret of the admin token every test server has.
const AdminToken = "test-admin-secret"

// Server is a running test server.
type Server struct {
	*httptest.Server
	Store mds.Store
	Blobs *localfs.BlobStore

	mu  sync.Mutex
	now time.Time
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
	blobs, err := localfs.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { blobs.Close() })
	if err := store.CreateToken(ctx, &mds.Token{Name: "admin", Admin: true, Hash: mds.HashToken(AdminToken)}); err != nil {
		tb.Fatal(err)
	}
	return start(tb, store, blobs, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), opts)
}

// Restart starts a second server over s's store and blobs, with nothing
// carried over in memory: a restart, or another node.
func (s *Server) Restart(tb testing.TB, opts ...func(*httpapi.Config)) *Server {
	return start(tb, s.Store, s.Blobs, s.Now(), opts)
}

func start(tb testing.TB, store mds.Store, blobs *localfs.BlobStore, now time.Time, opts []func(*httpapi.Config)) *Server {
	tb.Helper()
	ctx := context.Background()
	s := &Server{Store: store, Blobs: blobs, now: now}
	// The listener comes first: snapshots need the public URL it gets.
	s.Server = httptest.NewUnstartedServer(nil)
	live := release.NewLive(store, release.Options{BaseURL: "http://" + s.Listener.Addr().String()})
	if err := live.Refresh(ctx); err != nil {
		tb.Fatal(err)
	}
	cfg := httpapi.Config{Store: store, Blobs: blobs, Live: live, Now: s.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&cfg)
	}
	s.Config.Handler = httpapi.New(cfg)
	s.Server.Start()
	tb.Cleanup(s.Close)
	return s
}

// Now is the server's clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the server's clock forward.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	s.now = s.now.Add(d)
	s.mu.Unlock()
}
