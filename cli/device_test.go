package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/cli"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/signing"
)

// signedServer is a stand-in for the device API: it signs the answer it
// is told to give with its deployment key and serves hotpatch files.
type signedServer struct {
	t   *testing.T
	url string
	key *signing.PrivateKey

	mu      sync.Mutex
	version int64
	hot     any
	sign    *signing.PrivateKey // signs instead of key when set
	files   map[string][]byte
	seen    []mds.Device
}

func newSignedServer(t *testing.T) *signedServer {
	k, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	s := &signedServer{t: t, key: k, files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		var d mds.Device
		json.NewDecoder(r.Body).Decode(&d)
		s.seen = append(s.seen, d)
		// The device state the answer is for, echoed as the server does.
		echo := map[string]any{"platform": d.Platform, "app_version": d.AppVersion, "build": d.Build, "hotpatch": d.Hotpatch}
		body, _ := json.Marshal(struct {
			App      string    `json:"app"`
			Version  int64     `json:"version"`
			Expires  time.Time `json:"expires"`
			Device   any       `json:"device"`
			Upgrade  any       `json:"upgrade"`
			Hotpatch any       `json:"hotpatch"`
		}{"ak_shop", s.version, time.Now().Add(time.Hour).UTC().Truncate(time.Second), echo, nil, s.hot})
		body = append(body, '\n')
		signer := s.key
		if s.sign != nil {
			signer = s.sign
		}
		sig, _ := signer.Sign(body)
		w.Header().Set("Mds-Signature", "keyid="+signer.Public().ID()+";sig="+base64.StdEncoding.EncodeToString(sig))
		w.Write(body)
	})
	mux.HandleFunc("GET /client/v1/blobs/{sha}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b := s.files[r.PathValue("sha")]
		s.mu.Unlock()
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// say makes the next answers, at a higher version, carry hot as their
// hotpatch section.
func (s *signedServer) say(hot any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.hot = hot
}

// apply is an apply instruction for data, served from now on.
func (s *signedServer) apply(id int64, data []byte, team *signing.PrivateKey) map[string]any {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	s.mu.Lock()
	s.files[sha] = data
	s.mu.Unlock()
	return map[string]any{"action": "apply", "task_id": 3, "stage": "gray", "patch_id": id, "patch_version": 1,
		"notes": "fix", "url": s.url + "/client/v1/blobs/" + sha, "sha256": sha, "size": len(data), "key_id": team.Public().ID()}
}

func (s *signedServer) last() mds.Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[len(s.seen)-1]
}

// device runs one mds device command line.
func device(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := cli.Run(context.Background(), append([]string{"device"}, args...), &out, &errb)
	return out.String() + errb.String(), err
}

func mustDevice(t *testing.T, args ...string) string {
	t.Helper()
	out, err := device(t, args...)
	if err != nil {
		t.Fatalf("mds device %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func writePEM(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func packPatch(t *testing.T, team *signing.PrivateKey, content string) []byte {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "fix.js"), []byte(content), 0o600)
	var buf bytes.Buffer
	m := hotpatch.Manifest{AppKey: "ak_shop", Platform: mds.Android, Targets: []hotpatch.Target{{AppVersion: "2.0.0"}}, PatchVersion: 1}
	if _, err := hotpatch.Pack(&buf, m, src, team, time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDeviceCommands drives a device through the CLI: a check, an apply,
// two launches without confirming (a revert), the bad patch skipped, a
// confirmed patch, and a rollback.
func TestDeviceCommands(t *testing.T) {
	srv := newSignedServer(t)
	team, err := signing.Generate(signing.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	serverPEM := writePEM(t, keys, "deploy.pub.pem", srv.key.Public().MarshalPEM())
	teamPEM := writePEM(t, keys, "team.pub.pem", team.Public().MarshalPEM())
	state := filepath.Join(t.TempDir(), "dev1")

	srv.say(srv.apply(12, packPatch(t, team, "one"), team))
	out := mustDevice(t, "check", "--state", state, "--server", srv.url, "--app-key", "ak_shop", "--platform", "android",
		"--app-version", "2.0.0", "--build", "200", "--device-id", "d1", "--attr", "tier=gold", "--attr", "beta=yes",
		"--network", "LTE", "--server-key", serverPEM, "--team-key", teamPEM)
	for _, want := range []string{"version 1 (new)", "upgrade   none", "apply patch 12 (v1)", "from task 3 (gray)", "running   no patch"} {
		if !strings.Contains(out, want) {
			t.Errorf("check printed no %q:\n%s", want, out)
		}
	}
	d := srv.last()
	if d.DeviceID != "d1" || d.AppVersion != "2.0.0" || d.Build != 200 || d.Attributes["tier"] != "gold" || d.Network != "4g" || d.Hotpatch != nil {
		t.Errorf("the check sent %+v", d)
	}

	// Everything is remembered: --state alone from here on.
	out = mustDevice(t, "apply", "--state", state)
	if !strings.Contains(out, "applied patch 12 (v1) into "+filepath.Join(state, "patches", "12")) {
		t.Fatalf("apply printed:\n%s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "patches", "12", "fix.js")); string(b) != "one" {
		t.Errorf("the patch's file holds %q", b)
	}
	out = mustDevice(t, "status", "--state", state)
	for _, want := range []string{"current   patch 12 (v1)", "(pending: not launched yet)", "previous  no patch", "running   no patch", "bad       none", "answer    version 1", "device    d1, android 2.0.0 build 200, app ak_shop"} {
		if !strings.Contains(out, want) {
			t.Errorf("status printed no %q:\n%s", want, out)
		}
	}
	if out := mustDevice(t, "check", "--state", state); !strings.Contains(out, "applied already, it runs from the next start") || !strings.Contains(out, "running   no patch") {
		t.Errorf("check of the patch applied and not started:\n%s", out)
	}
	if out := mustDevice(t, "mark-healthy", "--state", state); !strings.Contains(out, "not started, so not confirmed") {
		t.Errorf("mark-healthy before a start:\n%s", out)
	}
	if out := mustDevice(t, "start", "--state", state); !strings.Contains(out, "running patch 12 (v1) from") || !strings.Contains(out, "pending") {
		t.Errorf("first start:\n%s", out)
	}
	if out := mustDevice(t, "start", "--state", state); !strings.Contains(out, "reverted patch 12 (v1)") || !strings.Contains(out, "running no patch") {
		t.Errorf("second start:\n%s", out)
	}
	if out := mustDevice(t, "apply", "--state", state); !strings.Contains(out, "skipped bad patch 12") {
		t.Errorf("apply of the bad patch:\n%s", out)
	}

	srv.say(srv.apply(13, packPatch(t, team, "two"), team))
	mustDevice(t, "apply", "--state", state)
	mustDevice(t, "start", "--state", state)
	if out := mustDevice(t, "mark-healthy", "--state", state); !strings.Contains(out, "patch 13 (v1) marked healthy") {
		t.Errorf("mark-healthy:\n%s", out)
	}
	if out := mustDevice(t, "start", "--state", state); strings.Contains(out, "reverted") || !strings.Contains(out, "running patch 13 (v1)") {
		t.Errorf("start after mark-healthy:\n%s", out)
	}
	mustDevice(t, "check", "--state", state)
	if p := srv.last().Hotpatch; p == nil || p.ID != 13 {
		t.Errorf("the check reported %+v", p)
	}
	srv.say(map[string]any{"action": "rollback", "patch_id": 0})
	if out := mustDevice(t, "check", "--state", state); !strings.Contains(out, "roll back to no patch") {
		t.Errorf("check of a rollback:\n%s", out)
	}
	if out := mustDevice(t, "apply", "--state", state); !strings.Contains(out, "rolled back from patch 13 (v1) to no patch") {
		t.Errorf("rollback:\n%s", out)
	}
	if out := mustDevice(t, "apply", "--state", state); !strings.Contains(out, "nothing to do: running no patch") {
		t.Errorf("apply with nothing to do:\n%s", out)
	}

	var st sdk.Status
	out = mustDevice(t, "status", "--state", state, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Current != nil || len(st.Bad) != 1 || st.Bad[0] != 12 {
		t.Errorf("status --json: %v\n%s", err, out)
	}

	// A flag given again replaces what was remembered.
	mustDevice(t, "check", "--state", state, "--app-version", "2.0.1", "--attr", "tier=silver")
	if d := srv.last(); d.AppVersion != "2.0.1" || d.Attributes["tier"] != "silver" || d.Attributes["beta"] != "" || d.DeviceID != "d1" {
		t.Errorf("after overriding: %+v", d)
	}
	mustDevice(t, "check", "--state", state)
	if d := srv.last(); d.AppVersion != "2.0.1" {
		t.Errorf("the override was not remembered: %+v", d)
	}
}

func TestDeviceErrors(t *testing.T) {
	srv := newSignedServer(t)
	keys := t.TempDir()
	serverPEM := writePEM(t, keys, "deploy.pub.pem", srv.key.Public().MarshalPEM())
	state := t.TempDir()

	if _, err := device(t, "status"); err == nil || !strings.Contains(err.Error(), "--state DIR") {
		t.Errorf("no --state: %v", err)
	}
	if _, err := device(t, "check", "--state", state, "--server", srv.url, "--server-key", serverPEM); err == nil || !strings.Contains(err.Error(), "--app-key") {
		t.Errorf("no app key: %v", err)
	}
	if _, err := device(t, "check", "--state", t.TempDir(), "--app-key", "ak_shop", "--platform", "android", "--app-version", "2.0.0"); err == nil || !strings.Contains(err.Error(), "--server-key") {
		t.Errorf("no server key: %v", err)
	}
	priv, _ := srv.key.MarshalPEM()
	if _, err := device(t, "check", "--state", state, "--server-key", writePEM(t, keys, "deploy.pem", priv)); err == nil || !strings.Contains(err.Error(), "give the public one") {
		t.Errorf("a private key as --server-key: %v", err)
	}
	if _, err := device(t, "check", "--state", state, "--attr", "novalue"); err == nil || !strings.Contains(err.Error(), "NAME=VALUE") {
		t.Errorf("a bad --attr: %v", err)
	}
	// What was given so far is remembered; the answer is signed by a key
	// the device does not trust.
	other, _ := signing.Generate(signing.ECDSAP256)
	srv.mu.Lock()
	srv.sign = other
	srv.mu.Unlock()
	srv.say(nil)
	_, err := device(t, "check", "--state", state, "--app-key", "ak_shop", "--platform", "android", "--app-version", "2.0.0")
	if !errors.Is(err, sdk.ErrUntrustedAnswer) || !strings.Contains(err.Error(), "not signed by a server key this app trusts") {
		t.Errorf("an untrusted answer: %v", err)
	}
	if _, err := device(t, "chek", "--state", state); err == nil || !strings.Contains(err.Error(), "did you mean check") {
		t.Errorf("a typo: %v", err)
	}
	// Two keys in one file, as mds keys server-public prints them during
	// a rotation.
	both := writePEM(t, keys, "both.pem", append(other.Public().MarshalPEM(), srv.key.Public().MarshalPEM()...))
	if out, err := device(t, "check", "--state", state, "--server-key", both); err != nil {
		t.Errorf("two keys in one file: %v\n%s", err, out)
	}
	// A key followed by something else is refused, not read up to it.
	junk := writePEM(t, keys, "junk.pem", append(srv.key.Public().MarshalPEM(), "not a key\n"...))
	if _, err := device(t, "check", "--state", state, "--server-key", junk); err == nil || !strings.Contains(err.Error(), "not PEM") {
		t.Errorf("a key and junk: %v", err)
	}
	// The state directory is the SDK client's while it is open.
	c, err := sdk.Open(state, sdk.Config{Server: srv.url, ServerKeys: []*signing.PublicKey{srv.key.Public()},
		Device: mds.Device{AppKey: "ak_shop", Platform: mds.Android, AppVersion: "2.0.0", DeviceID: "d"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := device(t, "status", "--state", state); err == nil || !strings.Contains(err.Error(), "is in use by another process") {
		t.Errorf("a state directory in use: %v", err)
	}
	c.Close()
	mustDevice(t, "status", "--state", state)
}
