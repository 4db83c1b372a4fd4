package cli_test

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

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/cli"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/signing"
)

// cliAdmin is the admin token of test servers.
const cliAdmin = httpapitest.AdminToken

// newServer runs the real server stack and returns its URL; the admin
// token is cliAdmin.
func newServer(t *testing.T, opts ...func(*httpapi.Config)) string {
	t.Helper()
	return httpapitest.Start(t, opts...).URL
}

// mdsCLI runs one CLI command line and returns its output.
func mdsCLI(t *testing.T, server, token string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--server", server, "--token", token)
	err := cli.Run(context.Background(), args, &out, &errb)
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
	var ext api.Package
	if err := json.Unmarshal([]byte(out), &ext); err != nil || ext.UpgradeSpec == nil || ext.SHA256 != strings.Repeat("ab", 32) || ext.Size != 4096 || ext.Source != mds.SourceURL {
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

// TestCLIMistakes: a typo fails with a suggestion, whatever level it is
// at, and a bare group says what it needs.
func TestCLIMistakes(t *testing.T) {
	url := newServer(t)
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android,ios")
	for args, want := range map[string]string{
		"taks list":              `did you mean`,
		"task lsit --app shop":   `did you mean list`,
		"task":                   "needs a subcommand",
		"whitelist shwo":         `did you mean show`,
		"app create":             "accepts 1 arg",
		"task show --app shop x": "numeric id",
		"explain --app shop --app-version 1.0 --device-id d": "say which platform",
	} {
		_, err := mdsCLI(t, url, cliAdmin, strings.Fields(args)...)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), want) {
			t.Errorf("mds %s: %v; want an error saying %q", args, err, want)
		}
	}
}

// TestCLIShowAndChange: show commands print one field for scripts; apps
// are renamed, re-keyed and deleted from the CLI.
func TestCLIShowAndChange(t *testing.T) {
	url := newServer(t)
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android")
	mustCLI(t, url, cliAdmin, "app", "create", "blog", "--platform", "ios")
	key := strings.TrimSpace(mustCLI(t, url, cliAdmin, "app", "show", "shop", "--field", "key"))
	if !strings.HasPrefix(key, "ak_") || strings.ContainsAny(key, " \n") {
		t.Fatalf("app show --field key printed %q", key)
	}
	if _, err := mdsCLI(t, url, cliAdmin, "app", "show", "shop", "--field", "nope"); err == nil || !strings.Contains(err.Error(), "it has") {
		t.Errorf("unknown field: %v", err)
	}
	mustCLI(t, url, cliAdmin, "package", "create", "--app", "shop", "--platform", "android", "--version", "2.0", "--url", "https://cdn.example.com/a.apk")
	if v := strings.TrimSpace(mustCLI(t, url, cliAdmin, "package", "show", "--app", "shop", "1", "--field", "version")); v != "2.0" {
		t.Errorf("package show --field version: %q", v)
	}
	mustCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "1", "--mode", "force")
	if s := strings.TrimSpace(mustCLI(t, url, cliAdmin, "task", "show", "--app", "shop", "1", "--field", "status")); s != "draft" {
		t.Errorf("task show --field status: %q", s)
	}
	out := mustCLI(t, url, cliAdmin, "app", "list", "--limit", "1")
	if !strings.Contains(out, "blog") || strings.Contains(out, "shop ") || !strings.Contains(out, "--after blog") {
		t.Errorf("a page of one app:\n%s", out)
	}
	out = mustCLI(t, url, cliAdmin, "app", "rotate-key", "shop")
	if !strings.Contains(out, "previous key  "+key) {
		t.Errorf("rotate-key:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "app", "retire-key", "shop")
	out = mustCLI(t, url, cliAdmin, "app", "update", "shop", "--name", "Shop Two", "--slug", "shop2")
	if !strings.Contains(out, "app        shop2") || !strings.Contains(out, "Shop Two") {
		t.Errorf("app update:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "task", "delete", "--app", "shop2", "1")
	mustCLI(t, url, cliAdmin, "package", "delete", "--app", "shop2", "1")
	mustCLI(t, url, cliAdmin, "app", "delete", "shop2")
	if _, err := mdsCLI(t, url, cliAdmin, "app", "show", "shop2"); err == nil || mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("a deleted app: %v (code %q)", err, mds.ErrorCode(err))
	}
}

// TestCLIKeysGenerate: a key pair lands in two PEM files, the private one
// readable by its owner alone, and is never overwritten.
func TestCLIKeysGenerate(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		prefix := filepath.Join(dir, "team-"+alg)
		var out bytes.Buffer
		if err := cli.Run(context.Background(), []string{"keys", "generate", "--out", prefix, "--alg", alg}, &out, &out); err != nil {
			t.Fatalf("%s: %v\n%s", alg, err, out.String())
		}
		privPEM, err := os.ReadFile(prefix + ".pem")
		if err != nil {
			t.Fatal(err)
		}
		pubPEM, err := os.ReadFile(prefix + ".pub.pem")
		if err != nil {
			t.Fatal(err)
		}
		priv, err := signing.ParsePrivateKeyPEM(privPEM)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := signing.ParsePublicKeyPEM(pubPEM)
		if err != nil || !pub.Equal(priv.Public()) || string(pub.Alg()) != alg {
			t.Fatalf("%s: the files hold different keys: %v", alg, err)
		}
		if !strings.Contains(out.String(), pub.ID()) {
			t.Errorf("%s: output does not name key id %s:\n%s", alg, pub.ID(), out.String())
		}
		if st, _ := os.Stat(prefix + ".pem"); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: private key mode %v, want 0600", alg, st.Mode().Perm())
		}
		err = cli.Run(context.Background(), []string{"keys", "generate", "--out", prefix}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "never overwritten") {
			t.Errorf("%s: generating over an existing key: %v", alg, err)
		}
		if again, _ := os.ReadFile(prefix + ".pem"); !bytes.Equal(again, privPEM) {
			t.Errorf("%s: the private key changed", alg)
		}
	}
	if err := cli.Run(context.Background(), []string{"keys", "generate", "--out", filepath.Join(dir, "x"), "--alg", "rsa"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "ed25519") {
		t.Errorf("--alg rsa: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pem")); err == nil {
		t.Error("a refused generate left a file")
	}
}
