package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/sqlite"
)

func TestBootstrapAdmin(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var printed bytes.Buffer
	if err := bootstrapAdmin(ctx, store, bootstrap{stderr: &printed}); err != nil {
		t.Fatal(err)
	}
	_, secret, ok := strings.Cut(printed.String(), "export MDS_TOKEN=")
	if !ok {
		t.Fatalf("first start printed no token: %q", printed.String())
	}
	secret = strings.TrimSpace(secret)
	tok, err := store.FindTokenByHash(ctx, mds.HashToken(secret))
	if err != nil || !tok.Admin {
		t.Fatalf("printed token %q does not authenticate as admin: %v", secret, err)
	}
	printed.Reset()
	if err := bootstrapAdmin(ctx, store, bootstrap{stderr: &printed}); err != nil || printed.Len() != 0 {
		t.Errorf("second start printed %q (%v); the token must be shown once", printed.String(), err)
	}
	// A different MDS_ADMIN_TOKEN does not silently take the deployment
	// over: it is refused, and the old secret keeps working.
	const fromEnv = "from-env-0123456789abcdef0123456789"
	err = bootstrapAdmin(ctx, store, bootstrap{secret: fromEnv, stderr: &printed})
	if err == nil || !strings.Contains(err.Error(), "--rotate-admin-token") {
		t.Fatalf("a different MDS_ADMIN_TOKEN: %v; want a refusal naming --rotate-admin-token", err)
	}
	if _, err := store.FindTokenByHash(ctx, mds.HashToken(secret)); err != nil {
		t.Errorf("a refused MDS_ADMIN_TOKEN changed the admin token: %v", err)
	}
	// Asked to, it rotates, logs it and prints nothing.
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	if err := bootstrapAdmin(ctx, store, bootstrap{secret: fromEnv, rotate: true, stderr: &printed, log: log}); err != nil || printed.Len() != 0 {
		t.Fatalf("rotation: %v, printed %q", err, printed.String())
	}
	if !strings.Contains(logged.String(), "admin token rotated") || strings.Contains(logged.String(), fromEnv) {
		t.Errorf("rotation log %q: want it said, without the secret", logged.String())
	}
	if _, err := store.FindTokenByHash(ctx, mds.HashToken(fromEnv)); err != nil {
		t.Errorf("MDS_ADMIN_TOKEN does not authenticate after rotation: %v", err)
	}
	if _, err := store.FindTokenByHash(ctx, mds.HashToken(secret)); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("the generated token still works after rotation: %v", err)
	}
	// The same secret again is a plain restart.
	if err := bootstrapAdmin(ctx, store, bootstrap{secret: fromEnv, stderr: &printed}); err != nil {
		t.Errorf("restart with the same MDS_ADMIN_TOKEN: %v", err)
	}
	if err := bootstrapAdmin(ctx, store, bootstrap{secret: "short", stderr: &printed}); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short MDS_ADMIN_TOKEN: %v", err)
	}
	if err := bootstrapAdmin(ctx, store, bootstrap{rotate: true, stderr: &printed}); err == nil {
		t.Error("rotation without a new secret was accepted")
	}
}

func TestBootstrapReplacesExpiredAdmins(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	past := time.Now().Add(-time.Hour)
	if err := store.CreateToken(ctx, &mds.Token{Name: "old-admin", Admin: true, Hash: mds.HashToken("x"), ExpiresAt: &past}); err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	if err := bootstrapAdmin(ctx, store, bootstrap{stderr: &printed}); err != nil || !strings.Contains(printed.String(), "export MDS_TOKEN=") {
		t.Errorf("only an expired admin exists: %v, printed %q; want a new token", err, printed.String())
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	base := serveConfig{data: t.TempDir(), addr: "127.0.0.1:0", logLevel: "info", logFormat: "text", maxUpload: "1MiB", poll: "2s", blobMaxAge: "1h"}
	for name, mutate := range map[string]func(*serveConfig){
		"zero poll":    func(c *serveConfig) { c.poll = "0s" },
		"bare number":  func(c *serveConfig) { c.poll = "5" },
		"upload size":  func(c *serveConfig) { c.maxUpload = "huge" },
		"log level":    func(c *serveConfig) { c.logLevel = "chatty" },
		"database":     func(c *serveConfig) { c.databaseURL = "mysql://x" },
		"proxies":      func(c *serveConfig) { c.proxies = "10.0.0.0/8,lan" },
		"blob max age": func(c *serveConfig) { c.blobMaxAge = "forever" },
	} {
		c := base
		mutate(&c)
		if err := serve(context.Background(), c, "", io.Discard); err == nil {
			t.Errorf("%s: serve accepted it", name)
		}
	}
}

// TestBootstrapNameTaken: a non-admin token named "admin" and no admin at
// all must stop the server with an explanation, not start it unmanageable.
func TestBootstrapNameTaken(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	app := &mds.App{Slug: "shop", Key: mds.NewAppKey(), Platforms: []mds.Platform{mds.Android}}
	if err := store.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	lesser := &mds.Token{Name: "admin", Hash: mds.HashToken("x"), Grants: []mds.Grant{{AppID: app.ID, Role: mds.RoleViewer}}}
	if err := store.CreateToken(ctx, lesser); err != nil {
		t.Fatal(err)
	}
	err = bootstrapAdmin(ctx, store, bootstrap{stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "taken by a token without the admin flag") {
		t.Errorf("bootstrap with the name taken: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512MiB": 512 << 20, "8GiB": 8 << 30, "2GB": 2e9, "10 KiB": 10 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-5MiB", "0", "99999999999TiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestOpenStoreRejectsUnknownURL(t *testing.T) {
	if _, err := openStore(context.Background(), "mysql://x", t.TempDir()); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Errorf("mysql URL: %v", err)
	}
	s, err := openStore(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
