package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/signing"
)

// team is an app team's key, registered with the app.
func (e *testEnv) team(app string, alg signing.Alg) *signing.PrivateKey {
	e.t.Helper()
	k, err := signing.Generate(alg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.call("POST", "/api/v1/apps/"+app+"/keys", e.admin, api.AddTeamKey{PublicKey: string(k.Public().MarshalPEM()), Name: "team"}, 201, nil)
	return k
}

// pack packs files as patch n of a for app versions, signed by key.
func pack(t testing.TB, a *mds.App, key *signing.PrivateKey, n int64, files map[string][]byte, versions ...string) []byte {
	t.Helper()
	m := hotpatch.Manifest{AppKey: a.Key, Platform: mds.Android, PatchVersion: n, Notes: fmt.Sprintf("patch %d", n)}
	for _, v := range versions {
		m.Targets = append(m.Targets, mds.HotpatchTarget{AppVersion: v})
	}
	return hotpatchtest.Pack(t, files, m, key)
}

// push uploads a hotpatch file.
func (e *testEnv) push(app string, file []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.request("POST", "/api/v1/apps/"+app+"/hotpatches", e.admin, bytes.NewReader(file))
}

// mustPush uploads a hotpatch file that must be accepted.
func (e *testEnv) mustPush(app string, file []byte) *api.Package {
	e.t.Helper()
	resp, b := e.push(app, file)
	if resp.StatusCode != 201 {
		e.t.Fatalf("push: %d %s", resp.StatusCode, b)
	}
	var p api.Package
	if err := json.Unmarshal(b, &p); err != nil || p.Hotpatch == nil {
		e.t.Fatalf("push answer %s: %v", b, err)
	}
	return &p
}

// hotpatchTask releases package pkg with targeting tg.
func (e *testEnv) hotpatchTask(app string, pkg int64, tg map[string]any) *fullTask {
	e.t.Helper()
	var t fullTask
	e.call("POST", "/api/v1/apps/"+app+"/tasks", e.admin, map[string]any{"package_id": pkg, "targeting": tg, "release": true}, 201, &t)
	return &t
}

// stored reports whether the blob store holds file, or an app has a
// record of it.
func (e *testEnv) stored(app string, file []byte) bool {
	e.t.Helper()
	sum := fmt.Sprintf("%x", sha256.Sum256(file))
	if _, err := e.Blobs.Stat(e.t.Context(), sum); mds.ErrorCode(err) != mds.ENOTFOUND {
		return true
	}
	resp, _ := e.request("GET", "/api/v1/apps/"+app+"/blobs/"+sum, e.admin, nil)
	return resp.StatusCode != http.StatusNotFound
}

// TestHotpatchUploadRefusals: every refusal names its problem and stores
// nothing: no package, no blob record, no file.
func TestHotpatchUploadRefusals(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	e.createApp("blog", mds.Android, mds.IOS)
	key := e.team("shop", signing.ECDSAP256)
	stranger, _ := signing.Generate(signing.ECDSAP256)
	retired := e.team("shop", signing.Ed25519)
	e.call("POST", "/api/v1/apps/shop/keys/"+retired.Public().ID()+"/retire", e.admin, nil, 200, nil)
	files := map[string][]byte{"classes.dex": []byte("dex bytes"), "lib/arm64/fix.so": bytes.Repeat([]byte{7}, 3000)}
	good := pack(t, shop, key, 3, files, "2.1.0")
	e.mustPush("shop", good) // patch 3 of 2.1.0 is taken from here on
	if !e.stored("shop", good) {
		t.Fatal("an accepted hotpatch is not stored")
	}

	tampered := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 1
		return b
	}
	entry := func(name, content string) hotpatchtest.Entry {
		return hotpatchtest.Entry{Name: name, Content: []byte(content)}
	}
	crafted := func(files ...hotpatchtest.Entry) []byte {
		m := hotpatchtest.Manifest(key, shop.Key, mds.Android, 9, []mds.HotpatchTarget{{AppVersion: "2.1.0"}}, files...)
		return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, files...)
	}
	var ios hotpatch.Manifest
	ios = hotpatch.Manifest{AppKey: shop.Key, Platform: mds.IOS, PatchVersion: 1, Targets: []mds.HotpatchTarget{{AppVersion: "1.0"}}}
	symlink := entry("files/a", "target")
	symlink.Mode = fs.ModeSymlink | 0o777
	lying := entry("files/a", strings.Repeat("x", 5000))
	lying.Raw, lying.DeclaredSize = true, new(int64(10))
	bomb := hotpatchtest.File("a", make([]byte, 50<<20))
	many := []hotpatchtest.Entry{}
	for i := range 10_001 {
		many = append(many, entry(fmt.Sprintf("files/f%05d", i), "x"))
	}
	for _, c := range []struct {
		name   string
		app    string
		file   []byte
		status int
		detail string
	}{
		{"not a zip", "shop", []byte("not a zip at all"), 400, "zip"},
		{"unsigned", "shop", hotpatchtest.BuildZip(t, []hotpatchtest.Entry{entry("manifest.json", "{}")}), 400, "manifest.sig"},
		{"one byte changed in the manifest", "shop", tampered(good, bytes.Index(good, []byte(`"patch 3"`))+2), 400, "corrupt"},
		{"a manifest changed after signing", "shop", resigned(t, key, shop), 400, "signature does not match"},
		{"a file that is not the one signed", "shop", unlike(t, key, shop), 400, "does not match"},
		{"signed by an unknown key", "shop", pack(t, shop, stranger, 4, files, "2.1.0"), 400, "has not registered"},
		{"signed by a retired key", "shop", pack(t, shop, retired, 4, files, "2.1.0"), 400, "retired"},
		{"for another app", "blog", pack(t, shop, key, 4, files, "2.1.0"), 400, "packed for app key"},
		{"for another platform", "shop", hotpatchtest.Pack(t, files, ios, key), 400, "ships on android"},
		{"a patch version not above the last", "shop", pack(t, shop, key, 3, files, "2.1.0"), 409, "not above 3"},
		{"an absolute path", "shop", crafted(entry("files//etc/passwd", "x")), 400, "path"},
		{"a path with ..", "shop", crafted(entry("files/../../evil", "x")), 400, ".."},
		{"a symlink", "shop", crafted(symlink), 400, "symlink"},
		{"a duplicate", "shop", crafted(entry("files/a", "x"), entry("files/a", "x")), 400, ""},
		{"too many files", "shop", crafted(many...), 400, "files"},
		{"a file larger than declared", "shop", crafted(lying), 400, ""},
		{"a zip bomb", "shop", crafted(bomb), 400, "bomb"},
	} {
		resp, b := e.push(c.app, c.file)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, b)
			continue
		}
		e.wantProblem(resp, b, c.status, c.detail)
		var list api.Packages
		e.call("GET", "/api/v1/apps/"+c.app+"/packages", e.admin, nil, 200, &list)
		if want := map[string]int{"shop": 1, "blog": 0}[c.app]; len(list.Packages) != want {
			t.Errorf("%s: the app has %d packages, want %d", c.name, len(list.Packages), want)
		}
		if e.stored(c.app, c.file) {
			t.Errorf("%s: the refused file was stored", c.name)
		}
	}
	// The upload is the upload endpoint's: only releasers of the app.
	viewer := e.createToken(e.admin, "viewer", grant("shop", mds.RoleViewer))
	resp, _ := e.request("POST", "/api/v1/apps/shop/hotpatches", viewer, bytes.NewReader(good))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer pushed: %d", resp.StatusCode)
	}
	if n := countFiles(t, e.Blobs.TempDir()); n != 0 {
		t.Errorf("the spool holds %d files after the uploads", n)
	}
}

// resigned is a hotpatch whose manifest was changed after the team signed
// it: a valid archive with a signature of other bytes.
func resigned(t *testing.T, key *signing.PrivateKey, a *mds.App) []byte {
	f := hotpatchtest.File("a.txt", []byte("a"))
	m := hotpatchtest.Manifest(key, a.Key, mds.Android, 5, []mds.HotpatchTarget{{AppVersion: "2.1.0"}}, f)
	signed := hotpatchtest.EncodeRaw(t, &m)
	sig, err := key.Sign(signed)
	if err != nil {
		t.Fatal(err)
	}
	m.PatchVersion = 6
	return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{
		{Name: hotpatch.ManifestName, Content: hotpatchtest.EncodeRaw(t, &m)}, {Name: hotpatch.SignatureName, Content: sig}, f})
}

// unlike is a well-formed, signed hotpatch whose one file differs by a
// byte from what the manifest says: only reading the files finds it.
func unlike(t *testing.T, key *signing.PrivateKey, a *mds.App) []byte {
	signed := hotpatchtest.File("a.txt", []byte("aaaa"))
	m := hotpatchtest.Manifest(key, a.Key, mds.Android, 5, []mds.HotpatchTarget{{AppVersion: "2.1.0"}}, signed)
	return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, hotpatchtest.File("a.txt", []byte("aaab")))
}

// TestHotpatchReleaseAndRollback: a gray patch reaches its audience, then
// everyone; a device that runs it is told exactly; a rollback sends every
// device that runs it back to the previous live patch, or to none, and
// tells nothing to devices that never had it; history and explain show it.
func TestHotpatchReleaseAndRollback(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	key := e.team("shop", signing.ECDSAP256)
	files := map[string][]byte{"fix.js": []byte("console.log('fixed')")}
	p1 := e.mustPush("shop", pack(t, shop, key, 1, files, "2.1.0"))
	p2 := e.mustPush("shop", pack(t, shop, key, 2, files, "2.1.0", "2.2.0"))
	e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "source": "url", "url": "https://cdn.example.com/s.apk"})
	var listed api.Packages
	e.call("GET", "/api/v1/apps/shop/packages?kind=hotpatch", e.admin, nil, 200, &listed)
	if len(listed.Packages) != 2 || listed.Packages[0].ID != p2.ID || listed.Packages[0].Hotpatch == nil {
		t.Errorf("hotpatches listed: %+v", listed.Packages)
	}
	t1 := e.hotpatchTask("shop", p1.ID, nil)
	wl := e.createWhitelist("shop", "testers", "device", "tester\n")
	t2 := e.hotpatchTask("shop", p2.ID, map[string]any{"whitelists": []int64{wl.ID}})

	dev := func(id, v string, runs *api.Package) map[string]any {
		d := device(shop, mds.Android, v)
		d["device_id"] = id
		if runs != nil {
			d["hotpatch"] = map[string]any{"patch_id": runs.ID, "patch_version": runs.Hotpatch.PatchVersion}
		}
		return d
	}
	told := func(d map[string]any) string {
		t.Helper()
		_, a := e.check(d)
		h := a.Hotpatch
		if h == nil {
			return "nothing"
		}
		if h.Action == "rollback" && h.PatchID == 0 {
			return "rollback to none"
		}
		if h.URL == "" || h.Size == 0 || h.KeyID != key.Public().ID() {
			t.Errorf("a hotpatch answer without its file: %+v", h)
		}
		return fmt.Sprintf("%s %d", h.Action, h.PatchVersion)
	}
	for _, c := range []struct {
		dev  map[string]any
		want string
	}{
		{dev("tester", "2.1.0", nil), "apply 2"},
		{dev("someone", "2.1.0", nil), "apply 1"},
		{dev("someone", "2.1.0", p1), "apply 1"},
		{dev("tester", "2.2.0", nil), "apply 2"},
		{dev("someone", "2.2.0", nil), "nothing"},
		{dev("someone", "3.0.0", nil), "nothing"},
	} {
		if got := told(c.dev); got != c.want {
			t.Errorf("gray: %v told %q, want %q", c.dev["device_id"], got, c.want)
		}
	}
	// The patch file is served to devices while a live task delivers it.
	_, a := e.check(dev("tester", "2.1.0", nil))
	resp, body := e.request("GET", strings.TrimPrefix(a.Hotpatch.URL, e.URL), "", nil)
	if resp.StatusCode != 200 || int64(len(body)) != a.Hotpatch.Size {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(body))
	}

	e.act("shop", t2.ID, mds.ActionPromote)
	if got := told(dev("someone", "2.1.0", p1)); got != "apply 2" {
		t.Errorf("promoted: %q", got)
	}
	// Rollback of patch 2: who runs it goes back to 1 (2.1.0) or none (2.2.0).
	e.act("shop", t2.ID, mds.ActionRollback)
	for _, c := range []struct {
		dev  map[string]any
		want string
	}{
		{dev("tester", "2.1.0", p2), "rollback 1"},
		{dev("someone", "2.2.0", p2), "rollback to none"},
		{dev("someone", "2.1.0", p1), "apply 1"},
		{dev("fresh", "2.1.0", nil), "apply 1"},
		{dev("fresh", "2.2.0", nil), "nothing"},
	} {
		if got := told(c.dev); got != c.want {
			t.Errorf("rolled back: %v told %q, want %q", c.dev["device_id"], got, c.want)
		}
	}
	resp, _ = e.request("GET", strings.TrimPrefix(a.Hotpatch.URL, e.URL), "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a withdrawn patch is still served: %d", resp.StatusCode)
	}
	// Undone only by a new release: the rolled-back task takes no action.
	for _, action := range []mds.Action{mds.ActionResume, mds.ActionRelease, mds.ActionRollback, mds.ActionStop} {
		resp, b := e.request("POST", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/%s", t2.ID, action), e.admin, nil)
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("%s after rollback: %d %s", action, resp.StatusCode, b)
		}
	}
	resp, b := e.request("DELETE", fmt.Sprintf("/api/v1/apps/shop/tasks/%d", t2.ID), e.admin, nil)
	e.wantProblem(resp, b, http.StatusConflict, "rolled back")
	// Stopping patch 1 keeps it on the devices that run it.
	e.act("shop", t1.ID, mds.ActionStop)
	if got := told(dev("someone", "2.1.0", p1)); got != "nothing" {
		t.Errorf("stopped: %q", got)
	}

	var history api.History
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/history", t2.ID), e.admin, nil, 200, &history)
	var actions []string
	for _, ev := range history.Events {
		actions = append(actions, ev.Action+"→"+string(ev.Status))
	}
	if got := strings.Join(actions, " "); got != "created→draft release→live promote→live rollback→rolled_back" {
		t.Errorf("history: %s", got)
	}
	var ex api.ExplainResult
	e.call("POST", "/api/v1/apps/shop/explain", e.admin, map[string]any{"device": dev("tester", "2.1.0", p2)}, 200, &ex)
	b, _ = json.Marshal(ex)
	if !bytes.Contains(b, []byte(fmt.Sprintf("which task %d rolled back", t2.ID))) {
		t.Errorf("explain does not name the rollback: %s", b)
	}
}
