package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/sqlite"
)

// cliAdmin is the admin token of test servers, long enough for bootstrapAdmin.
const cliAdmin = "cli-admin-0123456789abcdef0123456789"

// newServer runs the real server stack and returns its URL; the admin
// token is cliAdmin.
func newServer(t *testing.T, opts ...func(*httpapi.Config)) string {
	t.Helper()
	s := httpapitest.Start(t, opts...)
	if err := bootstrapAdmin(context.Background(), s.Store, cliAdmin, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return s.URL
}

// mdsCLI runs one CLI command line and returns its output.
func mdsCLI(t *testing.T, server, token string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--server", server, "--token", token)
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func mustCLI(t *testing.T, server, token string, args ...string) string {
	t.Helper()
	out, err := mdsCLI(t, server, token, args...)
	if err != nil {
		t.Fatalf("mds %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestCLIReleaseFlow drives a whole release from the CLI and checks what a
// device sees at each step.
func TestCLIReleaseFlow(t *testing.T) {
	url := newServer(t)
	out := mustCLI(t, url, cliAdmin, "app", "create", "shop", "--name", "Shop", "--platform", "android,ios", "--json")
	var app mds.App
	if err := json.Unmarshal([]byte(out), &app); err != nil || !strings.HasPrefix(app.Key, "ak_") {
		t.Fatalf("app create: %v\n%s", err, out)
	}
	apk := filepath.Join(t.TempDir(), "shop-2.1.0.apk")
	if err := os.WriteFile(apk, bytes.Repeat([]byte("dex"), 300_000), 0o600); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notes, []byte("Faster checkout\nNew icons"), 0o600)
	out = mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "2.1.0",
		"--build", "210", "--notes-file", notes, "--file", apk, "--range", "1.0.0..2.0.9", "--wifi-only")
	if !strings.Contains(out, "package   1") || !strings.Contains(out, "size      900000") {
		t.Fatalf("package create printed:\n%s", out)
	}
	out = mustCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "1", "--mode", "single",
		"--remind-interval", "24h", "--release")
	if !strings.Contains(out, "status        live") || !strings.Contains(out, "remind every  24h0m0s") {
		t.Fatalf("task create printed:\n%s", out)
	}

	check := func() map[string]any {
		body := `{"app_key":"` + app.Key + `","platform":"android","app_version":"1.5.0","device_id":"d1"}`
		resp, err := http.Post(url+"/client/v1/check", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a map[string]any
		json.NewDecoder(resp.Body).Decode(&a)
		return a
	}
	a := check()
	up, _ := a["upgrade"].(map[string]any)
	if up == nil || up["version"] != "2.1.0" || up["notes"] != "Faster checkout\nNew icons" || up["network"] != "wifi" ||
		up["remind_interval_seconds"] != float64(86400) {
		t.Fatalf("device sees %v", a)
	}
	mustCLI(t, url, cliAdmin, "task", "pause", "--app", "shop", "1")
	if a := check(); a["upgrade"] != nil {
		t.Errorf("paused task still offered: %v", a)
	}
	mustCLI(t, url, cliAdmin, "task", "resume", "--app", "shop", "1")
	if a := check(); a["upgrade"] == nil {
		t.Error("resumed task not offered")
	}
	out = mustCLI(t, url, cliAdmin, "task", "history", "--app", "shop", "1")
	for _, want := range []string{"created", "release", "pause", "resume"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %s:\n%s", want, out)
		}
	}
	out = mustCLI(t, url, cliAdmin, "task", "list", "--app", "shop", "--status", "live")
	if !strings.Contains(out, "2.1.0") {
		t.Errorf("task list:\n%s", out)
	}

	// An external file can carry its digest and size for devices to check.
	out = mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "2.2.0",
		"--url", "https://cdn.example.com/shop-2.2.0.apk", "--sha256", strings.Repeat("ab", 32), "--size", "4096", "--json")
	var ext mds.Package
	if err := json.Unmarshal([]byte(out), &ext); err != nil || ext.SHA256 != strings.Repeat("ab", 32) || ext.Size != 4096 || ext.Source != mds.SourceURL {
		t.Errorf("url package: %v %+v", err, ext)
	}

	// A store link needs no file.
	out = mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "ios", "--version", "2.1.0",
		"--store-url", "https://apps.apple.com/app/id123")
	if !strings.Contains(out, "source    store") {
		t.Errorf("store package:\n%s", out)
	}
	out = mustCLI(t, url, cliAdmin, "package", "list", "--app", "shop")
	if strings.Count(out, "2.1.0") != 2 || !strings.Contains(out, "2.2.0") {
		t.Errorf("package list:\n%s", out)
	}

	// Mistakes are caught before a new file is uploaded, and a file the
	// server already has is not sent again: the uploaded byte count stays.
	fresh := filepath.Join(t.TempDir(), "new.apk")
	os.WriteFile(fresh, []byte("never uploaded"), 0o600)
	_, err := mdsCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "two", "--file", fresh)
	if err == nil || !strings.Contains(err.Error(), "start with a digit") {
		t.Errorf("bad version: %v", err)
	}
	_, err = mdsCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "harmony", "--version", "3.0", "--file", fresh)
	if err == nil || !strings.Contains(err.Error(), "ships on android,ios, not harmony") {
		t.Errorf("platform the app lacks: %v", err)
	}
	mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "2.1.1", "--file", apk)
	if got := uploadedBytes(t, url); got != "900000" {
		t.Errorf("uploaded %s bytes, want 900000: a refused package was uploaded, or a known file sent again", got)
	}
}

// uploadedBytes reads mds_upload_bytes_total from the server's metrics.
func uploadedBytes(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "mds_upload_bytes_total "); ok {
			return v
		}
	}
	t.Fatal("no mds_upload_bytes_total in the metrics")
	return ""
}

func TestCLITokensAndErrors(t *testing.T) {
	url := newServer(t)
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android")
	out := mustCLI(t, url, cliAdmin, "token", "create", "ci", "--grant", "shop=releaser", "--json")
	var res struct{ Secret string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Secret == "" {
		t.Fatalf("token create: %s", out)
	}
	out = mustCLI(t, url, res.Secret, "token", "whoami")
	if !strings.Contains(out, "shop=releaser") {
		t.Errorf("whoami:\n%s", out)
	}
	_, err := mdsCLI(t, url, res.Secret, "app", "create", "blog", "--platform", "ios")
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "admin") {
		t.Errorf("releaser creating an app: %v", err)
	}
	_, err = mdsCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "42", "--mode", "force")
	if err == nil || !strings.Contains(err.Error(), "package 42 not found") {
		t.Errorf("missing package: %v", err)
	}
	_, err = mdsCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "1")
	if err == nil || !strings.Contains(err.Error(), "exactly one of --file") {
		t.Errorf("no source: %v", err)
	}
	_, err = mdsCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "1",
		"--url", "https://x.example.com/a.apk", "--range", "3..1")
	if err == nil || !strings.Contains(err.Error(), "--range") {
		t.Errorf("bad range: %v", err)
	}
	_, err = mdsCLI(t, url, "wrong", "app", "list")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	out = mustCLI(t, url, cliAdmin, "token", "list")
	if !strings.Contains(out, "ci") || !strings.Contains(out, "admin of everything") {
		t.Errorf("token list:\n%s", out)
	}
	_, err = mdsCLI(t, "http://127.0.0.1:1", cliAdmin, "app", "list")
	if err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestBootstrapAdmin(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mds.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var printed bytes.Buffer
	if err := bootstrapAdmin(ctx, store, "", &printed); err != nil {
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
	if err := bootstrapAdmin(ctx, store, "", &printed); err != nil || printed.Len() != 0 {
		t.Errorf("second start printed %q (%v); the token must be shown once", printed.String(), err)
	}
	// MDS_ADMIN_TOKEN re-keys the admin token and prints nothing.
	const fromEnv = "from-env-0123456789abcdef0123456789"
	if err := bootstrapAdmin(ctx, store, fromEnv, &printed); err != nil || printed.Len() != 0 {
		t.Fatalf("bootstrap from env: %v, printed %q", err, printed.String())
	}
	if _, err := store.FindTokenByHash(ctx, mds.HashToken(fromEnv)); err != nil {
		t.Errorf("MDS_ADMIN_TOKEN does not authenticate: %v", err)
	}
	if _, err := store.FindTokenByHash(ctx, mds.HashToken(secret)); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("the generated token still works after re-keying: %v", err)
	}
	if err := bootstrapAdmin(ctx, store, "short", &printed); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("short MDS_ADMIN_TOKEN: %v", err)
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
	if err := bootstrapAdmin(ctx, store, "", &printed); err != nil || !strings.Contains(printed.String(), "export MDS_TOKEN=") {
		t.Errorf("only an expired admin exists: %v, printed %q; want a new token", err, printed.String())
	}
}

func TestServeRejectsBadSettings(t *testing.T) {
	base := serveConfig{data: t.TempDir(), addr: "127.0.0.1:0", logLevel: "info", logFormat: "text", maxUpload: "1MiB", poll: "2s"}
	for name, mutate := range map[string]func(*serveConfig){
		"zero poll":   func(c *serveConfig) { c.poll = "0s" },
		"bare number": func(c *serveConfig) { c.poll = "5" },
		"upload size": func(c *serveConfig) { c.maxUpload = "huge" },
		"log level":   func(c *serveConfig) { c.logLevel = "chatty" },
		"database":    func(c *serveConfig) { c.databaseURL = "mysql://x" },
		"proxies":     func(c *serveConfig) { c.proxies = "10.0.0.0/8,lan" },
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
	err = bootstrapAdmin(ctx, store, "", &bytes.Buffer{})
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
