package sdk_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/signing"
)

// These tests run the SDK against the real server stack over HTTP, with
// a proxy between them that passes everything through unless a test
// makes it an attacker: one on the path, or one holding the server.

// world is a server with an app, a registered team key, and a proxy in
// front of its device API, at which answers' links point.
type world struct {
	t     *testing.T
	srv   *httpapitest.Server
	proxy *proxy
	mgmt  *client.Client
	app   *mds.App
	team  *signing.PrivateKey
}

func newWorld(t *testing.T, opts ...func(*httpapi.Config)) *world {
	p := &proxy{}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	p.front = front.URL
	srv := httpapitest.Start(t, append([]func(*httpapi.Config){func(c *httpapi.Config) { c.PublicURL = front.URL }}, opts...)...)
	target, _ := url.Parse(srv.URL)
	p.rp = httputil.NewSingleHostReverseProxy(target)
	w := &world{t: t, srv: srv, proxy: p, mgmt: client.New(srv.URL, httpapitest.AdminToken)}
	var err error
	if w.app, err = w.mgmt.CreateApp(t.Context(), api.CreateApp{Slug: "shop", Platforms: []mds.Platform{mds.Android}}); err != nil {
		t.Fatal(err)
	}
	w.team = w.register(signing.ECDSAP256)
	return w
}

// register adds a new team key to the app.
func (w *world) register(alg signing.Alg) *signing.PrivateKey {
	w.t.Helper()
	k, err := signing.Generate(alg)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.mgmt.AddTeamKey(w.t.Context(), "shop", api.AddTeamKey{PublicKey: string(k.Public().MarshalPEM())}); err != nil {
		w.t.Fatal(err)
	}
	return k
}

// files are a patch's files: n sets them apart.
func files(n int64) map[string][]byte {
	return map[string][]byte{
		"classes.dex":         fmt.Appendf(nil, "dex of patch %d", n),
		"assets/fix.js":       fmt.Appendf(nil, "console.log('patch %d')", n),
		"lib/arm64/libfix.so": bytes.Repeat([]byte{byte(n)}, 70_000),
	}
}

// pack packs patch n of 2.1.0, signed by key.
func (w *world) pack(key *signing.PrivateKey, n int64) []byte {
	m := hotpatch.Manifest{AppKey: w.app.Key, Platform: mds.Android, PatchVersion: n, Notes: fmt.Sprintf("patch %d", n),
		Targets: []mds.HotpatchTarget{{AppVersion: "2.1.0"}}}
	return hotpatchtest.Pack(w.t, files(n), m, key)
}

// push uploads patch n signed by key and returns its package.
func (w *world) push(key *signing.PrivateKey, n int64) *api.Package {
	w.t.Helper()
	b := w.pack(key, n)
	p, err := w.mgmt.PushHotpatch(w.t.Context(), "shop", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// release releases package p; with devices, gray to those device IDs.
func (w *world) release(p *api.Package, devices ...string) *api.Task {
	w.t.Helper()
	ctx := w.t.Context()
	var tg mds.Targeting
	if len(devices) > 0 {
		wl, err := w.mgmt.CreateWhitelist(ctx, "shop", api.CreateWhitelist{Name: fmt.Sprintf("testers of %d", p.ID), Kind: mds.WhitelistDevices})
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.mgmt.ReplaceWhitelist(ctx, "shop", wl.ID, strings.NewReader(strings.Join(devices, "\n")), false); err != nil {
			w.t.Fatal(err)
		}
		tg.Whitelists = []int64{wl.ID}
	}
	task, err := w.mgmt.CreateTask(ctx, "shop", api.CreateTask{PackageID: p.ID, Targeting: tg, Release: true})
	if err != nil {
		w.t.Fatal(err)
	}
	return task
}

func (w *world) act(task *api.Task, a mds.Action) {
	w.t.Helper()
	if _, err := w.mgmt.Act(w.t.Context(), "shop", task.ID, a); err != nil {
		w.t.Fatal(err)
	}
}

// device opens an SDK device of app version v that trusts the server's
// key and the given team keys, on the server's clock.
func (w *world) device(id, v string, dir string, team ...*signing.PrivateKey) *sdk.Client {
	w.t.Helper()
	if dir == "" {
		dir = w.t.TempDir()
	}
	cfg := sdk.Config{Server: w.proxy.front, Device: mds.Device{AppKey: w.app.Key, Platform: mds.Android, AppVersion: v, DeviceID: id},
		ServerKeys: []*signing.PublicKey{w.srv.AnswerKey.Public()}, Now: w.srv.Now}
	if team == nil {
		team = []*signing.PrivateKey{w.team}
	}
	for _, k := range team {
		cfg.TeamKeys = append(cfg.TeamKeys, k.Public())
	}
	c, err := sdk.Open(dir, cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// update checks and applies what the answer says.
func update(t *testing.T, c *sdk.Client) (sdk.Result, error) {
	t.Helper()
	a, err := c.Check(context.Background())
	if err != nil {
		return sdk.Result{}, err
	}
	return c.Apply(context.Background(), a)
}

func mustUpdate(t *testing.T, c *sdk.Client) sdk.Result {
	t.Helper()
	r, err := update(t, c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runs asserts that c runs patch p (nil: none) and that its files are
// exactly the signed ones.
func runs(t *testing.T, c *sdk.Client, p *api.Package) {
	t.Helper()
	st := c.Status()
	if p == nil {
		if st.Current != nil {
			t.Fatalf("runs patch %d, want none", st.Current.ID)
		}
		return
	}
	if st.Current == nil || st.Current.ID != p.ID {
		t.Fatalf("runs %+v, want patch %d", st.Current, p.ID)
	}
	want := files(p.Hotpatch.PatchVersion)
	n := 0
	err := filepath.WalkDir(st.Current.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(st.Current.Dir, path)
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want[filepath.ToSlash(rel)]) {
			t.Errorf("%s differs from the signed file", rel)
		}
		n++
		return nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("patch dir: %v, %d files, want %d", err, n, len(want))
	}
}

// TestDeviceLifecycle: a gray patch reaches its tester and not others,
// then everyone once promoted; a newer patch replaces it; a rollback
// sends exactly the devices that run the withdrawn patch back to the
// previous one; a patch the app never confirms is reverted at the next
// launch and not applied again.
func TestDeviceLifecycle(t *testing.T) {
	w := newWorld(t)
	tester, other, old := w.device("tester", "2.1.0", ""), w.device("other", "2.1.0", ""), w.device("old", "2.0.0", "")
	confirm := func(c *sdk.Client) {
		t.Helper()
		if _, err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.MarkHealthy(); err != nil {
			t.Fatal(err)
		}
	}

	p1 := w.push(w.team, 1)
	t1 := w.release(p1, "tester")
	if r := mustUpdate(t, tester); r.Outcome != sdk.OutcomeApplied || !r.Downloaded {
		t.Fatalf("tester: %+v", r)
	}
	runs(t, tester, p1)
	confirm(tester)
	for _, c := range []*sdk.Client{other, old} {
		if r := mustUpdate(t, c); r.Outcome != sdk.OutcomeNothing {
			t.Errorf("outside the gray audience: %+v", r)
		}
		runs(t, c, nil)
	}

	w.act(t1, mds.ActionPromote)
	mustUpdate(t, other)
	runs(t, other, p1)
	confirm(other)
	mustUpdate(t, old)
	runs(t, old, nil) // patches 2.1.0 only

	p2 := w.push(w.team, 2)
	t2 := w.release(p2)
	mustUpdate(t, tester)
	runs(t, tester, p2)
	confirm(tester)

	// Withdraw patch 2: the tester, who runs it, goes back to patch 1
	// (kept on the device, not downloaded again); other never had it and
	// is told nothing of it.
	w.act(t2, mds.ActionRollback)
	if r := mustUpdate(t, tester); r.Outcome != sdk.OutcomeRolledBack || r.Downloaded || r.Patch == nil || r.Patch.ID != p1.ID {
		t.Fatalf("rollback: %+v", r)
	}
	runs(t, tester, p1)
	if r := mustUpdate(t, other); r.Outcome != sdk.OutcomeNothing {
		t.Errorf("a device that never had the patch: %+v", r)
	}
	runs(t, other, p1)
	history, err := w.mgmt.History(t.Context(), "shop", t2.ID, client.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if last := history.Events[len(history.Events)-1]; last.Action != "rollback" || last.Status != mds.StatusRolledBack {
		t.Errorf("history ends with %+v", last)
	}

	// Patch 3 is applied, launched, and the app dies before confirming:
	// the next launch reverts it, and it is never applied again.
	p3 := w.push(w.team, 3)
	w.release(p3)
	mustUpdate(t, other)
	runs(t, other, p3)
	if _, err := other.Start(); err != nil {
		t.Fatal(err)
	}
	st, err := other.Start()
	if err != nil || st.Reverted == nil || st.Reverted.ID != p3.ID {
		t.Fatalf("second launch without confirming: %+v, %v", st.Reverted, err)
	}
	runs(t, other, p1)
	if r := mustUpdate(t, other); r.Outcome != sdk.OutcomeSkippedBad || r.Bad != p3.ID {
		t.Errorf("the bad patch again: %+v", r)
	}
	runs(t, other, p1)
}

// TestDeviceKeyRotation: after a new team key is registered and trusted,
// its patches apply; once the old key is retired, its patches are refused
// at upload; a device whose build does not trust a key refuses its
// patches.
func TestDeviceKeyRotation(t *testing.T) {
	w := newWorld(t)
	next := w.register(signing.Ed25519)
	stale := w.device("stale", "2.1.0", "", w.team)
	current := w.device("current", "2.1.0", "", w.team, next)
	p1 := w.push(next, 1)
	w.release(p1)
	mustUpdate(t, current)
	runs(t, current, p1)
	if _, err := update(t, stale); !errors.Is(err, sdk.ErrUnknownTeamKey) {
		t.Errorf("a patch signed by a key the build does not trust: %v", err)
	}
	runs(t, stale, nil)

	if _, err := w.mgmt.RetireTeamKey(t.Context(), "shop", w.team.Public().ID()); err != nil {
		t.Fatal(err)
	}
	b := w.pack(w.team, 2)
	_, err := w.mgmt.PushHotpatch(t.Context(), "shop", bytes.NewReader(b), int64(len(b)))
	if mds.ErrorCode(err) != mds.EINVALID || !strings.Contains(err.Error(), "retired") {
		t.Errorf("a patch signed by the retired key: %v", err)
	}
	w.release(w.push(next, 2))
	mustUpdate(t, current)
	if st := current.Status(); st.Current == nil || st.Current.PatchVersion != 2 {
		t.Errorf("after rotation: %+v", st.Current)
	}
}

// TestDeviceRefusals: what an attacker on the path, or one holding the
// server and its key, can do to an answer or a download, the SDK refuses,
// each with its own error, and the device keeps running what it ran.
func TestDeviceRefusals(t *testing.T) {
	for _, c := range []struct {
		name   string
		attack func(w *world, dev *sdk.Client)
		want   error
	}{
		{"a one-byte-tampered download", func(w *world, _ *sdk.Client) {
			w.proxy.onBlob(func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b })
		}, sdk.ErrHashMismatch},
		{"another file of the size named", func(w *world, _ *sdk.Client) {
			w.proxy.onBlob(func(b []byte) []byte {
				other := w.pack(w.team, 7)
				return append(other, make([]byte, len(b))...)[:len(b)]
			})
		}, sdk.ErrHashMismatch},
		{"a download longer than its size", func(w *world, _ *sdk.Client) {
			w.proxy.onBlob(func(b []byte) []byte { return append(bytes.Clone(b), "more"...) })
		}, sdk.ErrTooLong},
		{"an answer changed on the way", func(w *world, _ *sdk.Client) {
			w.proxy.onAnswer(func(body []byte) ([]byte, string) {
				return bytes.Replace(body, []byte(`"patch 1"`), []byte(`"patch X"`), 1), ""
			})
		}, sdk.ErrBadAnswerSignature},
		{"an answer signed by a key the device does not trust", func(w *world, _ *sdk.Client) {
			stranger, _ := signing.Generate(signing.ECDSAP256)
			w.proxy.onAnswer(func(body []byte) ([]byte, string) { return body, sign(t, stranger, body) })
		}, sdk.ErrUntrustedAnswer},
		{"a tampered patch from a server that holds the answer key", func(w *world, _ *sdk.Client) {
			// The server may say anything, and sign it; it cannot make the
			// team's signature of a changed manifest.
			evil := resigned(t, w, 1)
			w.proxy.onAnswer(func(body []byte) ([]byte, string) { return pointAt(t, w, body, evil) })
			w.proxy.onBlob(func([]byte) []byte { return evil })
		}, sdk.ErrBadPatchSignature},
		{"a replayed older answer", func(w *world, dev *sdk.Client) {
			old := w.proxy.record()
			if _, err := dev.Check(t.Context()); err != nil {
				t.Fatal(err)
			}
			w.act(w.release(w.push(w.team, 2), "nobody"), mds.ActionPause) // the app moves on
			if _, err := dev.Check(t.Context()); err != nil {
				t.Fatal(err)
			}
			w.proxy.replay(old)
		}, sdk.ErrReplay},
		{"an answer held back past its expiry", func(w *world, dev *sdk.Client) {
			old := w.proxy.record()
			if _, err := dev.Check(t.Context()); err != nil {
				t.Fatal(err)
			}
			w.srv.Advance(25 * time.Hour)
			w.proxy.replay(old)
		}, sdk.ErrExpired},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			w.release(w.push(w.team, 1))
			dev := w.device("d", "2.1.0", "")
			c.attack(w, dev)
			before := dev.Status()
			_, err := update(t, dev)
			if !errors.Is(err, c.want) {
				t.Fatalf("refused with %v, want %v", err, c.want)
			}
			after := dev.Status()
			answerRefused := slices.Contains([]error{sdk.ErrBadAnswerSignature, sdk.ErrUntrustedAnswer, sdk.ErrReplay, sdk.ErrExpired}, c.want)
			if after.Current != nil || answerRefused && after.AnswerVersion != before.AnswerVersion {
				t.Errorf("the refusal changed the device: %+v → %+v", before, after)
			}
			// Once the attacker stops, the device updates; but an answer
			// signed by the server's own key stands until the server's
			// answer changes: the device keeps refusing its patch.
			w.proxy.honest()
			if c.want == sdk.ErrBadPatchSignature {
				return
			}
			mustUpdate(t, dev)
			if st := dev.Status(); st.Current == nil || st.Current.PatchVersion != 1 {
				t.Errorf("after the attack: %+v", st.Current)
			}
		})
	}
}

// proxy forwards to the server, changing what a test tells it to.
type proxy struct {
	rp *httputil.ReverseProxy
	mu sync.Mutex
	// What it does: change answers, change downloads, record answers,
	// replay a recorded one.
	answer    func(body []byte) ([]byte, string)
	blob      func([]byte) []byte
	cut       func([]byte) bool // drops the connection halfway through a blob it holds true
	recording *recorded
	replaying *recorded
	front     string
}

type recorded struct {
	header http.Header
	body   []byte
}

func (p *proxy) onAnswer(f func([]byte) ([]byte, string)) { p.mu.Lock(); p.answer = f; p.mu.Unlock() }
func (p *proxy) onBlob(f func([]byte) []byte)             { p.mu.Lock(); p.blob = f; p.mu.Unlock() }
func (p *proxy) cutBlob(f func([]byte) bool)              { p.mu.Lock(); p.cut = f; p.mu.Unlock() }

// record keeps the next answer to pass; replay answers every check with it.
func (p *proxy) record() *recorded {
	r := &recorded{}
	p.mu.Lock()
	p.recording = r
	p.mu.Unlock()
	return r
}

func (p *proxy) replay(r *recorded) { p.mu.Lock(); p.replaying = r; p.mu.Unlock() }

func (p *proxy) honest() {
	p.mu.Lock()
	p.answer, p.blob, p.cut, p.recording, p.replaying = nil, nil, nil, nil, nil
	p.mu.Unlock()
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The whole body first: a watch's answer starts before the reverse
	// proxy would be done sending the request on, and net/http closes a
	// body once the answer starts, which cuts the stream.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	p.mu.Lock()
	answer, blob, cut, rec, replay := p.answer, p.blob, p.cut, p.recording, p.replaying
	p.mu.Unlock()
	check := strings.HasSuffix(r.URL.Path, "/check")
	if check && replay != nil {
		for k, v := range replay.header {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusOK)
		w.Write(replay.body)
		return
	}
	change := func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK || strings.HasSuffix(r.URL.Path, "/watch") {
			return nil // a stream passes through as it comes
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch {
		case check && rec != nil && rec.body == nil:
			rec.header, rec.body = resp.Header.Clone(), body
		case check && answer != nil:
			var sig string
			body, sig = answer(body)
			if sig != "" {
				resp.Header.Set("Mds-Signature", sig)
			}
		case !check && blob != nil:
			body = blob(body)
			resp.Header.Del("Content-Range")
		case !check && cut != nil && cut(body):
			// The length stays the whole file's; the copy fails halfway,
			// and the proxy drops the connection.
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)/2]), errReader{}))
			return nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	if !check && blob != nil {
		r.Header.Del("Range") // the attacker answers whole
		r.Header.Del("If-Range")
	}
	rp := *p.rp
	rp.ModifyResponse = change
	rp.ErrorLog = log.New(io.Discard, "", 0) // what it drops on purpose
	rp.ServeHTTP(w, r)
}

// errReader fails every read, as a connection that broke.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// sign is key's Mds-Signature of body.
func sign(t *testing.T, key *signing.PrivateKey, body []byte) string {
	sig, err := key.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	return "keyid=" + key.Public().ID() + ";sig=" + base64.StdEncoding.EncodeToString(sig)
}

// pointAt makes body's hotpatch name file, and signs it with the
// server's own key: what a server gone rogue can do.
func pointAt(t *testing.T, w *world, body, file []byte) ([]byte, string) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	h := doc["hotpatch"].(map[string]any)
	h["sha256"] = fmt.Sprintf("%x", sha256.Sum256(file))
	h["size"] = len(file)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out, sign(t, w.srv.AnswerKey, out)
}

// resigned is patch n with its manifest changed after the team signed it.
func resigned(t *testing.T, w *world, n int64) []byte {
	var entries []hotpatchtest.Entry
	for p, b := range files(n) {
		entries = append(entries, hotpatchtest.File(p, b))
	}
	slices.SortFunc(entries, func(a, b hotpatchtest.Entry) int { return strings.Compare(a.Name, b.Name) })
	m := hotpatchtest.Manifest(w.team, w.app.Key, mds.Android, n, []mds.HotpatchTarget{{AppVersion: "2.1.0"}}, entries...)
	signed := hotpatchtest.EncodeRaw(t, &m)
	sig, err := w.team.Sign(signed)
	if err != nil {
		t.Fatal(err)
	}
	m.Notes = "a changed note"
	return hotpatchtest.BuildZip(t, append([]hotpatchtest.Entry{
		{Name: hotpatch.ManifestName, Content: hotpatchtest.EncodeRaw(t, &m)}, {Name: hotpatch.SignatureName, Content: sig}}, entries...))
}
