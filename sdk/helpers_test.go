package sdk

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/signing"
)

// The device every test client is.
const (
	testApp        = "ak_test"
	testAppVersion = "2.0.0"
	testBuild      = 200
)

// fakeServer is a small stand-in for the mds device API: it answers
// checks with a document it signs with its key, ETags and 304s, and
// serves hotpatch files with ranges; tests change what it says and how it
// misbehaves.
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server
	key *signing.PrivateKey

	mu  sync.Mutex
	doc answerDoc
	// sign makes the Mds-Signature header of a body; nil for the key's.
	sign func(body []byte) string
	// tamper changes the body after it is signed.
	tamper func(body []byte) []byte
	// force answers every check with this status and no body.
	force int
	files map[string][]byte // served at /client/v1/blobs/<sha256>
	// extra is appended to every file served, with no Content-Length:
	// more bytes than the answer says.
	extra []byte
	// cut, when positive, makes the next full download stop after that
	// many bytes, the connection dropped.
	cut int
	// ignoreRange serves files whole whatever Range asks.
	ignoreRange bool
	// bind makes the answer's device member from the check's device; nil
	// echoes it, as the server does (echo).
	bind func(d mds.Device) any

	checks []seenCheck // every check received
	gets   []seenGet   // every file request received
}

// answerDoc is the signed document, in the protocol's member order.
type answerDoc struct {
	App      string    `json:"app"`
	Version  int64     `json:"version"`
	Expires  time.Time `json:"expires"`
	Device   any       `json:"device"`
	Upgrade  any       `json:"upgrade"`
	Hotpatch any       `json:"hotpatch"`
}

// echoed is the device member of an answer, as the protocol has it.
type echoed struct {
	Platform   mds.Platform      `json:"platform"`
	AppVersion string            `json:"app_version"`
	Build      int64             `json:"build"`
	Hotpatch   *mds.AppliedPatch `json:"hotpatch"`
}

// echo is the device member the server signs into an answer to a check
// of d.
func echo(d mds.Device) any {
	return echoed{Platform: d.Platform, AppVersion: d.AppVersion, Build: d.Build, Hotpatch: d.Hotpatch}
}

type seenCheck struct {
	device      mds.Device
	ifNoneMatch string
}

type seenGet struct {
	rangeHeader string
	sent        int64 // body bytes written
}

func newFakeServer(t *testing.T, now time.Time) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, key: mustKey(t, signing.ECDSAP256), files: map[string][]byte{}}
	f.doc = answerDoc{App: testApp, Version: 1, Expires: now.Add(24 * time.Hour)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", f.check)
	mux.HandleFunc("GET /client/v1/blobs/{sha}", f.blob)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func mustKey(t testing.TB, alg signing.Alg) *signing.PrivateKey {
	t.Helper()
	k, err := signing.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signatureOf is an Mds-Signature entry by key over body.
func signatureOf(t testing.TB, key *signing.PrivateKey, body []byte) string {
	sig, err := key.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	return "keyid=" + key.Public().ID() + ";sig=" + base64.StdEncoding.EncodeToString(sig)
}

// body is the answer to a check of d.
func (f *fakeServer) body(d mds.Device) []byte {
	doc := f.doc
	if f.bind != nil {
		doc.Device = f.bind(d)
	} else {
		doc.Device = echo(d)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		f.t.Error(err)
	}
	return append(b, '\n')
}

func (f *fakeServer) check(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d mds.Device
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		f.t.Errorf("check body: %v", err)
	}
	f.checks = append(f.checks, seenCheck{device: d, ifNoneMatch: r.Header.Get("If-None-Match")})
	if f.force != 0 {
		w.WriteHeader(f.force)
		return
	}
	body := f.body(d)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	sig := signatureOf(f.t, f.key, body)
	if f.sign != nil {
		sig = f.sign(body)
	}
	if f.tamper != nil {
		body = f.tamper(body)
	}
	if sig != "" {
		w.Header().Set("Mds-Signature", sig)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (f *fakeServer) blob(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	b, ok := f.files[r.PathValue("sha")]
	extra, ignore := f.extra, f.ignoreRange
	cut := f.cut
	rng := r.Header.Get("Range")
	if rng == "" {
		f.cut = 0
	}
	f.gets = append(f.gets, seenGet{rangeHeader: rng})
	seen := &f.gets[len(f.gets)-1]
	f.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"title":"Not Found","status":404,"detail":"no such file","code":"not_found"}`)
		return
	}
	count := &countingWriter{ResponseWriter: w}
	defer func() {
		f.mu.Lock()
		seen.sent = count.n
		f.mu.Unlock()
	}()
	switch {
	case extra != nil:
		// No Content-Length: the client learns the length only by
		// reading, which is what an endless body does.
		count.Write(b)
		count.Write(extra)
	case cut > 0 && rng == "":
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		count.Write(b[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	case ignore:
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		count.Write(b)
	default:
		sum := sha256.Sum256(b)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		http.ServeContent(count, r, "", time.Time{}, bytes.NewReader(b))
	}
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

// set changes the answer under the server's lock.
func (f *fakeServer) set(change func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// serve makes data downloadable and returns its sha256.
func (f *fakeServer) serve(data []byte) string {
	sum := sha256.Sum256(data)
	s := hex.EncodeToString(sum[:])
	f.set(func(f *fakeServer) { f.files[s] = data })
	return s
}

// instruction is the hotpatch section for a file served by f.
func (f *fakeServer) instruction(action string, id, version int64, data []byte, keyID string) *HotpatchInstruction {
	sha := f.serve(data)
	return &HotpatchInstruction{Action: action, TaskID: 9, Stage: "gray", PatchID: id, PatchVersion: version,
		Notes: "fix", URL: f.srv.URL + "/client/v1/blobs/" + sha, SHA256: sha, Size: int64(len(data)), KeyID: keyID}
}

// answer makes the next answers say h, at a higher version.
func (f *fakeServer) answer(h *HotpatchInstruction) {
	f.set(func(f *fakeServer) {
		f.doc.Version++
		if h == nil {
			f.doc.Hotpatch = nil
		} else {
			f.doc.Hotpatch = h
		}
	})
}

func (f *fakeServer) getCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.gets)
}

func (f *fakeServer) lastCheck() seenCheck {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checks[len(f.checks)-1]
}

// clock is a device clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a device under test: its server, team key, clock and client.
type env struct {
	t    *testing.T
	srv  *fakeServer
	team *signing.PrivateKey
	clk  *clock
	dir  string
	c    *Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	e := &env{t: t, srv: newFakeServer(t, clk.Now()), team: mustKey(t, signing.Ed25519), clk: clk, dir: t.TempDir()}
	e.c = e.open()
	return e
}

func (e *env) config() Config {
	return Config{
		Server: e.srv.srv.URL,
		Device: mds.Device{AppKey: testApp, Platform: mds.Android, AppVersion: testAppVersion, Build: testBuild,
			DeviceID: "device-1", Network: "WIFI"},
		ServerKeys: []*signing.PublicKey{e.srv.key.Public()},
		TeamKeys:   []*signing.PublicKey{e.team.Public()},
		Now:        e.clk.Now,
	}
}

// open opens the env's state directory afresh, as a new launch of the
// app does: the client open before is closed first.
func (e *env) open() *Client {
	e.t.Helper()
	return e.openWith(e.config())
}

// openWith closes the env's client and opens its directory with cfg.
func (e *env) openWith(cfg Config) *Client {
	e.t.Helper()
	if e.c != nil {
		if err := e.c.Close(); err != nil {
			e.t.Fatal(err)
		}
	}
	c, err := Open(e.dir, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func (e *env) check() *Answer {
	e.t.Helper()
	a, err := e.c.Check(e.t.Context())
	if err != nil {
		e.t.Fatalf("check: %v", err)
	}
	return a
}

// follow makes the server say h, then checks and applies.
func (e *env) follow(h *HotpatchInstruction) (Result, error) {
	e.t.Helper()
	e.srv.answer(h)
	a, err := e.c.Check(e.t.Context())
	if err != nil {
		return Result{}, err
	}
	return e.c.Apply(e.t.Context(), a)
}

func (e *env) mustFollow(h *HotpatchInstruction) Result {
	e.t.Helper()
	r, err := e.follow(h)
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return r
}

// patchFiles are the files of a test patch, by path.
type patchFiles map[string][]byte

// pack makes a hotpatch of files for the test device, signed by key.
func pack(t testing.TB, key *signing.PrivateKey, version int64, files patchFiles, targets ...hotpatch.Target) []byte {
	t.Helper()
	src := t.TempDir()
	for p, b := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(targets) == 0 {
		targets = []hotpatch.Target{{AppVersion: testAppVersion}}
	}
	m := hotpatch.Manifest{AppKey: testApp, Platform: mds.Android, Targets: targets, PatchVersion: version, Notes: "fix the checkout"}
	var buf bytes.Buffer
	if _, err := hotpatch.Pack(&buf, m, src, key, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// patch is a small patch of version n signed by the env's team key, its
// content depending on n.
func (e *env) patch(n int) ([]byte, patchFiles) {
	files := patchFiles{
		"classes.dex":         []byte(strings.Repeat(fmt.Sprintf("dex %d\n", n), 1000)),
		"lib/arm64/libfix.so": []byte(fmt.Sprintf("so %d", n)),
		"assets/config.json":  []byte(fmt.Sprintf(`{"patch":%d}`, n)),
	}
	return pack(e.t, e.team, int64(n), files), files
}

// launch is a new launch of the app: the directory opened afresh, and
// Start.
func (e *env) launch() Status {
	e.t.Helper()
	e.c = e.open()
	st, err := e.c.Start()
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// runsHealthy launches the app and confirms the patch it runs.
func (e *env) runsHealthy() {
	e.t.Helper()
	e.launch()
	if err := e.c.MarkHealthy(); err != nil {
		e.t.Fatal(err)
	}
}

// assertFiles checks that dir holds exactly files.
func assertFiles(t testing.TB, dir string, files patchFiles) {
	t.Helper()
	got := patchFiles{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Fatalf("%s holds %d files, want %d", dir, len(got), len(files))
	}
	for p, b := range files {
		if !bytes.Equal(got[p], b) {
			t.Fatalf("%s/%s differs from the packed file", dir, p)
		}
	}
}

// snapshot is what a refusal must leave alone: state.json and the
// entries of patches/.
type snapshot struct {
	state   string
	patches []string
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, stateFile))
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(e.dir, patchesDir))
	if err != nil {
		e.t.Fatal(err)
	}
	s := snapshot{state: string(b)}
	for _, d := range entries {
		s.patches = append(s.patches, d.Name())
	}
	return s
}

func (e *env) assertUnchanged(before snapshot) {
	e.t.Helper()
	after := e.snapshot()
	if after.state != before.state {
		e.t.Errorf("state.json changed:\nbefore %s\nafter  %s", before.state, after.state)
	}
	if strings.Join(after.patches, ",") != strings.Join(before.patches, ",") {
		e.t.Errorf("patches/ changed: %v, was %v", after.patches, before.patches)
	}
}

// refused makes the server say h, checks, and applies, expecting a
// refusal: it returns the error, having checked that the apply changed
// nothing (the check before it stores the answer, as it should).
func (e *env) refused(h *HotpatchInstruction) error {
	e.t.Helper()
	e.srv.answer(h)
	a := e.check()
	before := e.snapshot()
	_, err := e.c.Apply(e.t.Context(), a)
	if err == nil {
		e.t.Fatalf("applied %+v", h)
	}
	e.assertUnchanged(before)
	return err
}
