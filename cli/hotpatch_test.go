package cli_test

import (
	"archive/zip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/cli"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/signing"
)

// TestCLIHotpatchFlow: keys registered, listed and retired; a hotpatch
// packed from a directory (the app's key read from the server), verified,
// pushed, released and rolled back, all from the command line; and the
// deployment's public key printed for app builds.
func TestCLIHotpatchFlow(t *testing.T) {
	srv := httpapitest.Start(t)
	url := srv.URL
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android")
	mustCLI(t, url, cliAdmin, "keys", "generate", "--out", at("team"))
	out := mustCLI(t, url, cliAdmin, "keys", "add", "--app", "shop", at("team.pub.pem"))
	pubPEM, _ := os.ReadFile(at("team.pub.pem"))
	pub, err := signing.ParsePublicKeyPEM(pubPEM)
	if err != nil || !strings.Contains(out, pub.ID()) || !strings.Contains(out, "team") {
		t.Fatalf("keys add: %v\n%s", err, out)
	}

	src := at("patch")
	os.MkdirAll(filepath.Join(src, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "fix.js"), []byte("console.log('fixed')"), 0o644)
	os.WriteFile(filepath.Join(src, "lib", "fix.so"), []byte("so bytes"), 0o644)
	out = mustCLI(t, url, cliAdmin, "hotpatch", "pack", src, "--key", at("team.pem"), "--app", "shop", "--platform", "android",
		"--app-version", "2.1.0", "--app-version", "2.1.1:45", "--patch-version", "1", "--notes", "Fix checkout", "--out", at("fix-1.zip"))
	if !strings.Contains(out, "2.1.0, 2.1.1:45") || !strings.Contains(out, "2 (28 bytes)") {
		t.Errorf("pack output:\n%s", out)
	}
	if _, err := mdsCLI(t, url, cliAdmin, "hotpatch", "pack", src, "--key", at("team.pem"), "--app", "shop", "--platform", "android",
		"--app-version", "2.1.0", "--patch-version", "1", "--out", at("fix-1.zip")); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("packing over a file: %v", err)
	}
	out = mustCLI(t, url, cliAdmin, "hotpatch", "verify", at("fix-1.zip"), "--pub", at("team.pub.pem"))
	if !strings.Contains(out, "good (key "+pub.ID()) {
		t.Errorf("verify:\n%s", out)
	}
	other, _ := signing.Generate(signing.ECDSAP256)
	os.WriteFile(at("other.pub.pem"), other.Public().MarshalPEM(), 0o644)
	if _, err := mdsCLI(t, url, cliAdmin, "hotpatch", "verify", at("fix-1.zip"), "--pub", at("other.pub.pem")); err == nil {
		t.Error("verify with another key passed")
	}

	var pkg api.Package
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "hotpatch", "push", at("fix-1.zip"), "--app", "shop", "--json")), &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Hotpatch == nil || pkg.Hotpatch.PatchVersion != 1 || pkg.Hotpatch.KeyID != pub.ID() || len(pkg.Hotpatch.Targets) != 2 {
		t.Fatalf("pushed: %+v", pkg.Hotpatch)
	}
	var task api.Task
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "1", "--release", "--json")), &task); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, url, cliAdmin, "hotpatch", "rollback", "--app", "shop", "1")
	if !strings.Contains(out, "rolled_back") {
		t.Errorf("rollback:\n%s", out)
	}

	out = mustCLI(t, url, cliAdmin, "keys", "retire", "--app", "shop", pub.ID())
	if !strings.Contains(out, "retired") {
		t.Errorf("retire:\n%s", out)
	}
	out = mustCLI(t, url, cliAdmin, "keys", "list", "--app", "shop")
	if !strings.Contains(out, pub.ID()) || !strings.Contains(out, "retired") {
		t.Errorf("list:\n%s", out)
	}
	mustCLI(t, url, cliAdmin, "hotpatch", "pack", src, "--key", at("team.pem"), "--app-key", "offline-key", "--platform", "android",
		"--app-version", "2.1.0", "--patch-version", "2", "--out", at("fix-2.zip"))
	if _, err := mdsCLI(t, url, cliAdmin, "hotpatch", "push", at("fix-2.zip"), "--app", "shop"); err == nil || !strings.Contains(err.Error(), "packed for app key") {
		t.Errorf("a patch packed for another app key: %v", err)
	}
	if r, err := zip.OpenReader(at("fix-2.zip")); err != nil || len(r.File) != 4 {
		t.Errorf("the packed file: %v", err)
	}

	var b strings.Builder
	if err := cli.Run(context.Background(), []string{"keys", "server-public", "--server", url, "--token", cliAdmin}, &b, &b); err != nil {
		t.Fatal(err)
	}
	keys, err := signing.ParsePublicKeysPEM([]byte(b.String()))
	if err != nil || len(keys) != 1 || !keys[0].Equal(srv.AnswerKey.Public()) {
		t.Errorf("server-public printed %q: %v", b.String(), err)
	}
}

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDeviceWatchCommand: mds device watch follows a release as it
// happens, and its rollback, with no command in between.
func TestDeviceWatchCommand(t *testing.T) {
	srv := httpapitest.Start(t)
	srv.Advance(time.Since(srv.Now())) // the device runs on the real clock
	url := srv.URL
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android")
	appKey := strings.TrimSpace(mustCLI(t, url, cliAdmin, "app", "show", "shop", "--field", "key"))
	mustCLI(t, url, cliAdmin, "keys", "generate", "--out", at("team"))
	mustCLI(t, url, cliAdmin, "keys", "add", "--app", "shop", at("team.pub.pem"))
	os.WriteFile(at("deploy.pub.pem"), srv.AnswerKey.Public().MarshalPEM(), 0o644)
	src := at("patch")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "fix.js"), []byte("fixed"), 0o644)
	mustCLI(t, url, cliAdmin, "hotpatch", "pack", src, "--key", at("team.pem"), "--app", "shop", "--platform", "android",
		"--app-version", "2.1.0", "--patch-version", "1", "--out", at("fix-1.zip"))
	mustCLI(t, url, cliAdmin, "hotpatch", "push", at("fix-1.zip"), "--app", "shop")

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, []string{"device", "watch", "--state", at("dev"), "--server", url, "--app-key", appKey, "--platform", "android",
			"--app-version", "2.1.0", "--device-id", "d1", "--server-key", at("deploy.pub.pem"), "--team-key", at("team.pub.pem")}, out, out)
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("device watch printed no %q:\n%s", want, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("nothing to do: running no patch")
	mustCLI(t, url, cliAdmin, "task", "create", "--app", "shop", "--package", "1", "--release")
	waitFor("applied patch 1 (v1)")
	mustCLI(t, url, cliAdmin, "hotpatch", "rollback", "--app", "shop", "1")
	waitFor("cancelled patch 1 (v1), applied and never started")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("device watch, interrupted: %v\n%s", err, out.String())
	}
}
