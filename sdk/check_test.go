package sdk

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds/signing"
)

func TestCheckAcceptsAndReusesOn304(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) {
		f.doc.Version = 57
		f.doc.Upgrade = map[string]any{"task_id": 1, "version": "2.1.0", "mode": "force", "remind": true, "url": "https://cdn/x.apk", "future_member": 1}
	})
	a := e.check()
	if a.NotModified || a.Version != 57 || a.App != testApp || a.Upgrade == nil || a.Upgrade.Mode != "force" || a.Hotpatch != nil {
		t.Fatalf("answer: %+v", a)
	}
	if !a.Expires.Equal(e.clk.Now().Add(24 * time.Hour)) {
		t.Errorf("expires %v", a.Expires)
	}
	seen := e.srv.lastCheck()
	if seen.ifNoneMatch != "" || seen.device.Hotpatch != nil || seen.device.DeviceID != "device-1" ||
		seen.device.Network != "wifi" || seen.device.DeviceTime == nil || !seen.device.DeviceTime.Equal(e.clk.Now()) {
		t.Errorf("first check sent %+v, If-None-Match %q", seen.device, seen.ifNoneMatch)
	}
	st := e.c.Status()
	if st.AnswerVersion != 57 || !st.AnswerExpires.Equal(a.Expires) {
		t.Errorf("status %+v", st)
	}

	// The answer is unchanged: the server answers 304, and the stored
	// answer stands, also after a restart.
	e.c = e.open()
	b := e.check()
	if !b.NotModified || b.Version != 57 || b.Upgrade == nil || !bytes.Equal(a.Body, b.Body) || b.ETag != a.ETag {
		t.Fatalf("304 answer: %+v", b)
	}
	if got := e.srv.lastCheck().ifNoneMatch; got != a.ETag || got == "" {
		t.Errorf("If-None-Match %q, want %q", got, a.ETag)
	}
	// An equal version with another body is accepted.
	e.srv.set(func(f *fakeServer) { f.doc.Upgrade = nil })
	if c := e.check(); c.NotModified || c.Version != 57 || c.Upgrade != nil {
		t.Fatalf("equal version: %+v", c)
	}
}

func TestReplayRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) { f.doc.Version = 57 })
	e.check()
	before := e.snapshot()
	e.srv.set(func(f *fakeServer) { f.doc.Version = 56; f.doc.Upgrade = map[string]any{"version": "9"} })
	_, err := e.c.Check(t.Context())
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("lower version: %v", err)
	}
	e.assertUnchanged(before)
	if e.c.Status().AnswerVersion != 57 {
		t.Error("the version moved back")
	}
}

func TestExpiredAnswerRefused(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		e := newEnv(t)
		e.srv.set(func(f *fakeServer) { f.doc.Expires = e.clk.Now().Add(d) })
		before := e.snapshot()
		if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrExpired) {
			t.Fatalf("expires now%+v: %v", d, err)
		}
		e.assertUnchanged(before)
	}
}

// TestNotModifiedAfterExpiry: a server (or an attacker in its place)
// answering 304 forever cannot keep the device on an expired answer.
func TestNotModifiedAfterExpiry(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) { f.doc.Expires = e.clk.Now().Add(time.Hour) })
	e.check()
	e.clk.Add(2 * time.Hour)
	e.srv.set(func(f *fakeServer) { f.force = http.StatusNotModified })
	before := e.snapshot()
	_, err := e.c.Check(t.Context())
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("304 after expiry: %v", err)
	}
	e.assertUnchanged(before)
	if got := e.srv.lastCheck().ifNoneMatch; got != "" {
		t.Errorf("an expired answer's ETag was sent: %q", got)
	}
	// A fresh answer is accepted again.
	e.srv.set(func(f *fakeServer) { f.force = 0; f.doc.Expires = e.clk.Now().Add(time.Hour) })
	if a := e.check(); a.NotModified {
		t.Error("the fresh answer came as 304")
	}
}

func TestNotModifiedWithoutStoredAnswer(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) { f.force = http.StatusNotModified })
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrMalformedAnswer) {
		t.Fatalf("304 to a first check: %v", err)
	}
}

func TestUntrustedAnswerRefused(t *testing.T) {
	other := mustKey(t, signing.ECDSAP256)
	for name, sign := range map[string]func([]byte) string{
		"another key": func(b []byte) string { return signatureOf(t, other, b) },
		"no header":   func([]byte) string { return "" },
		"no keyid":    func(b []byte) string { return strings.Split(signatureOf(t, other, b), ";")[1] },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.set(func(f *fakeServer) { f.sign = sign })
			before := e.snapshot()
			if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrUntrustedAnswer) {
				t.Fatalf("%v", err)
			}
			e.assertUnchanged(before)
		})
	}
}

func TestTamperedAnswerRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) {
		f.tamper = func(b []byte) []byte { return bytes.Replace(b, []byte(`"version":2`), []byte(`"version":9`), 1) }
	})
	e.srv.answer(nil)
	before := e.snapshot()
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrBadAnswerSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	e.assertUnchanged(before)
	// A trusted key's signature that is not even base64 is as bad.
	e.srv.set(func(f *fakeServer) {
		f.tamper = nil
		f.sign = func([]byte) string { return "keyid=" + f.key.Public().ID() + ";sig=%%%" }
	})
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrBadAnswerSignature) {
		t.Fatalf("garbled signature: %v", err)
	}
	e.assertUnchanged(before)
}

func TestWrongAppRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.set(func(f *fakeServer) { f.doc.App = "ak_other" })
	before := e.snapshot()
	if _, err := e.c.Check(t.Context()); !errors.Is(err, ErrWrongApp) {
		t.Fatalf("%v", err)
	}
	e.assertUnchanged(before)
}

// TestRotation: during a server key rotation an answer carries one
// signature per key, and a build trusting either accepts it.
func TestRotation(t *testing.T) {
	e := newEnv(t)
	next := mustKey(t, signing.Ed25519)
	e.srv.set(func(f *fakeServer) {
		f.sign = func(b []byte) string { return signatureOf(t, next, b) + ", " + signatureOf(t, f.key, b) }
	})
	e.check()
	cfg := e.config()
	cfg.ServerKeys = []*signing.PublicKey{next.Public()}
	c, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(t.Context()); err != nil {
		t.Fatalf("a build trusting the new key only: %v", err)
	}
	// Spaces around entries and parameters, and parameters it does not
	// know, are allowed.
	sigs := parseSignatures(strings.Join([]string{"keyid=a;sig=" + base64.StdEncoding.EncodeToString([]byte("x")), " keyid=b ; sig=eQ== ;alg=ed25519"}, ","))
	if len(sigs) != 2 || sigs[0].keyID != "a" || string(sigs[0].sig) != "x" || sigs[1].keyID != "b" || string(sigs[1].sig) != "y" {
		t.Errorf("parsed %+v", sigs)
	}
}

// TestTrustChangeStopsReuse: a stored answer is checked again under the
// build's keys before a 304 may reuse it.
func TestTrustChangeStopsReuse(t *testing.T) {
	e := newEnv(t)
	e.check()
	cfg := e.config()
	cfg.ServerKeys = []*signing.PublicKey{mustKey(t, signing.ECDSAP256).Public()}
	c := e.openWith(cfg)
	e.srv.set(func(f *fakeServer) { f.force = http.StatusNotModified })
	if _, err := c.Check(t.Context()); !errors.Is(err, ErrUntrustedAnswer) {
		t.Fatalf("304 reusing an answer the build no longer trusts: %v", err)
	}
	if e.srv.lastCheck().ifNoneMatch != "" {
		t.Error("sent the ETag of an answer it no longer trusts")
	}
}

func TestServerError(t *testing.T) {
	e := newEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the server is starting","code":"unavailable"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cfg := e.config()
	cfg.Server = srv.URL
	c := e.openWith(cfg)
	before := e.snapshot()
	_, err := c.Check(t.Context())
	var se *ServerError
	if !errors.As(err, &se) || se.Status != 503 || se.Code != "unavailable" || se.RetryAfter != 5*time.Second || !se.Retryable() {
		t.Fatalf("503: %#v", err)
	}
	if !strings.Contains(err.Error(), "the server is starting") {
		t.Errorf("message %q", err)
	}
	e.assertUnchanged(before)
}

func TestOpenRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	for name, change := range map[string]func(*Config){
		"no server keys": func(c *Config) { c.ServerKeys = nil },
		"no device id":   func(c *Config) { c.Device.DeviceID = "" },
		"no app key":     func(c *Config) { c.Device.AppKey = "" },
		"bad server":     func(c *Config) { c.Server = "mds.example.com" },
	} {
		cfg := e.config()
		change(&cfg)
		if _, err := Open(t.TempDir(), cfg); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
