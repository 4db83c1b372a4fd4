package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/signing"
)

// pushOffline uploads an offline package.
func (e *testEnv) pushOffline(app string, file []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.request("POST", "/api/v1/apps/"+app+"/offline", e.admin, bytes.NewReader(file))
}

func (e *testEnv) mustPushOffline(app string, file []byte) *api.Package {
	e.t.Helper()
	resp, b := e.pushOffline(app, file)
	if resp.StatusCode != 201 {
		e.t.Fatalf("push: %d %s", resp.StatusCode, b)
	}
	var p api.Package
	if err := json.Unmarshal(b, &p); err != nil || p.Offline == nil {
		e.t.Fatalf("push answer %s: %v", b, err)
	}
	return &p
}

// rawOffline is an offline package whose manifest lists entries, sorted
// by name, as they are, valid or not, signed by key; its entry page is
// /index.html.
func rawOffline(t *testing.T, key *signing.PrivateKey, appKey string, entries ...bundletest.Entry) []byte {
	entries = slices.Clone(entries)
	slices.SortStableFunc(entries, func(a, b bundletest.Entry) int { return strings.Compare(a.Name, b.Name) })
	m := offlinetest.Manifest(appKey, "home", "9.0.0")
	m.Format, m.CreatedAt, m.KeyID, m.Alg = offline.Format, "2026-12-01T09:00:00Z", key.Public().ID(), key.Public().Alg()
	m.Files = bundletest.Files(entries...)
	mb, err := json.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return bundletest.Package(t, mb, key, entries...)
}

// TestOfflineUploadRefusals: every malicious or wrong offline package is
// refused with a problem naming it, and nothing is stored: no package, no
// blob record, no file, nothing left in the spool.
func TestOfflineUploadRefusals(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	e.createApp("blog", mds.Android)
	key := e.team("shop", signing.ECDSAP256)
	stranger, _ := signing.Generate(signing.ECDSAP256)
	site := offlinetest.Site("2.0.0", 2000)
	good := offlinetest.Pack(t, site, offlinetest.Manifest(shop.Key, "home", "2.0.0"), key)
	e.mustPushOffline("shop", good)

	entry := func(name, content string) bundletest.Entry {
		return bundletest.Entry{Name: name, Content: []byte(content)}
	}
	index := entry("files/index.html", "<html>")
	symlink := entry("files/link", "/etc/passwd")
	symlink.Mode = fs.ModeSymlink | 0o777
	device := entry("files/dev", "")
	device.Mode = fs.ModeDevice | 0o600
	lying := entry("files/big.js", strings.Repeat("x", 5000))
	lying.Raw, lying.DeclaredSize = true, new(int64(10))
	bomb := bundletest.File("bomb.bin", make([]byte, 50<<20))
	many := []bundletest.Entry{index}
	for i := range 10_001 {
		many = append(many, entry(fmt.Sprintf("files/f%05d", i), "x"))
	}
	tampered := bytes.Clone(good)
	tampered[bytes.Index(tampered, []byte(`"home"`))+2] ^= 1
	older := offlinetest.Manifest(shop.Key, "home", "1.9.0")
	noEntry := offlinetest.Manifest(shop.Key, "home", "3.0.0")
	noEntry.Entry = "/main.html"
	for _, c := range []struct {
		name   string
		app    string
		file   []byte
		status int
		detail string
	}{
		{"not a zip", "shop", []byte("not a zip at all"), 400, "zip"},
		{"a manifest changed after signing", "shop", tampered, 400, ""},
		{"zip-slip", "shop", rawOffline(t, key, shop.Key, index, entry("files/../../etc/cron.d/evil", "x")), 400, ".."},
		{"an absolute path", "shop", rawOffline(t, key, shop.Key, index, entry("files//etc/passwd", "x")), 400, "path"},
		{"a backslash path", "shop", rawOffline(t, key, shop.Key, index, entry(`files/..\evil`, "x")), 400, "backslash"},
		{"a symlink", "shop", rawOffline(t, key, shop.Key, index, symlink), 400, "symlink"},
		{"a device", "shop", rawOffline(t, key, shop.Key, index, device), 400, "device"},
		{"a duplicate", "shop", rawOffline(t, key, shop.Key, index, entry("files/a.js", "x"), entry("files/a.js", "x")), 400, ""},
		{"names equal but for case", "shop", rawOffline(t, key, shop.Key, index, entry("files/A.js", "x"), entry("files/a.js", "y")), 400, "case"},
		{"too many files", "shop", rawOffline(t, key, shop.Key, many...), 400, "files"},
		{"a file larger than declared", "shop", rawOffline(t, key, shop.Key, index, lying), 400, ""},
		{"a zip bomb", "shop", rawOffline(t, key, shop.Key, index, bomb), 400, "bomb"},
		{"signed by an unknown key", "shop", offlinetest.Pack(t, site, offlinetest.Manifest(shop.Key, "home", "3.0.0"), stranger), 400, "has not registered"},
		{"for another app", "blog", offlinetest.Pack(t, site, offlinetest.Manifest(shop.Key, "home", "3.0.0"), key), 400, "packed for app key"},
		{"a version not above the last", "shop", offlinetest.Pack(t, site, older, key), 409, "not above 2.0.0"},
		{"a hotpatch", "shop", pack(t, shop, key, 1, map[string][]byte{"a": []byte("a")}, "2.1.0"), 400, "mds-offline/1"},
	} {
		resp, b := e.pushOffline(c.app, c.file)
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
	// An entry page the package lacks is refused when packing, and so
	// would it be on upload: the manifest does not validate.
	if _, err := offline.Pack(new(bytes.Buffer), noEntry, t.TempDir(), key, time.Now()); err == nil {
		t.Error("packed a package without files")
	}
	viewer := e.createToken(e.admin, "viewer", grant("shop", mds.RoleViewer))
	if resp, _ := e.request("POST", "/api/v1/apps/shop/offline", viewer, bytes.NewReader(good)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer pushed: %d", resp.StatusCode)
	}
	if n := countFiles(t, e.Blobs.TempDir()); n != 0 {
		t.Errorf("the spool holds %d files after the uploads", n)
	}
}

// offlineAnswer is what a check answer says of offline packages.
type offlineAnswer struct {
	Device struct {
		Offline string `json:"offline"`
	} `json:"device"`
	Offline []struct {
		Package, Version, Type, URL, SHA256, Network string
		CanonicalSHA256                              string `json:"canonical_sha256"`
		KeyID                                        string `json:"key_id"`
		Size                                         int64
		CanonicalSize                                int64 `json:"canonical_size"`
		Delta                                        *struct {
			From, URL, SHA256 string
			Size              int64
		}
	} `json:"offline"`
}

// TestOfflineCheck: the answer lists the packages a device should hold,
// whole for one that holds none, with the delta from the version a device
// holds once it is built, nothing for one up to date (and a 304 when its
// answer did not change); the delta is served to devices; the device's
// holdings are echoed; a token of another app sees none of the deltas.
func TestOfflineCheck(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	e.createApp("blog", mds.Android)
	key := e.team("shop", signing.Ed25519)
	push := func(v string) *api.Package {
		return e.mustPushOffline("shop", offlinetest.Pack(t, offlinetest.Site(v, 100_000), offlinetest.Manifest(shop.Key, "home", v), key))
	}
	v1 := push("1.0.0")
	e.hotpatchTask("shop", v1.ID, nil)
	check := func(holds map[string]string, header ...string) (*http.Response, *offlineAnswer) {
		t.Helper()
		d := device(shop, mds.Android, "2.1.0")
		if holds != nil {
			d["offline"] = holds
		}
		resp, b := e.request("POST", "/client/v1/check", "", d, header...)
		if resp.StatusCode == http.StatusNotModified {
			return resp, nil
		}
		if resp.StatusCode != 200 {
			t.Fatalf("check: %d %s", resp.StatusCode, b)
		}
		e.verifyAnswer(resp, b, e.AnswerKey.Public())
		var a offlineAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatal(err)
		}
		if want := string(mds.AppendHeldDigest(nil, holds)); len(holds) > 0 && a.Device.Offline != want || len(holds) == 0 && a.Device.Offline != "" {
			t.Errorf("the answer echoes %q for a device holding %v", a.Device.Offline, holds)
		}
		return resp, &a
	}
	_, a := check(nil)
	if len(a.Offline) != 1 || a.Offline[0].Version != "1.0.0" || a.Offline[0].Delta != nil || a.Offline[0].SHA256 != v1.Offline.SHA256 ||
		a.Offline[0].CanonicalSHA256 != v1.Offline.CanonicalSHA256 || a.Offline[0].KeyID != key.Public().ID() || a.Offline[0].Type != "normal" {
		t.Fatalf("a fresh device is told %+v", a.Offline)
	}
	resp, a := check(map[string]string{"home": "1.0.0"})
	if len(a.Offline) != 0 {
		t.Fatalf("a device up to date is told %+v", a.Offline)
	}
	if again, _ := check(map[string]string{"home": "1.0.0"}, "If-None-Match", resp.Header.Get("Etag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("an unchanged answer: %d, want 304", again.StatusCode)
	}

	v2 := push("1.1.0")
	e.hotpatchTask("shop", v2.ID, nil)
	var ready *mds.Delta
	for deadline := time.Now().Add(20 * time.Second); ready == nil; {
		var list api.Deltas
		e.call("GET", "/api/v1/apps/shop/offline/deltas?package=home", e.admin, nil, 200, &list)
		if len(list.Deltas) == 1 && list.Deltas[0].Status == mds.DeltaReady {
			ready = list.Deltas[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delta ready within 20 s: %+v", list.Deltas)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The builder refreshes the node right after recording the delta;
	// this check may come between the two.
	if err := e.Live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, a = check(map[string]string{"home": "1.0.0"})
	if len(a.Offline) != 1 || a.Offline[0].Version != "1.1.0" || a.Offline[0].Delta == nil || a.Offline[0].Delta.From != "1.0.0" ||
		a.Offline[0].Delta.SHA256 != ready.SHA256 || a.Offline[0].Delta.Size != ready.Size {
		t.Fatalf("a device holding 1.0.0 is told %+v", a.Offline)
	}
	resp, body := e.request("GET", strings.TrimPrefix(a.Offline[0].Delta.URL, e.URL), "", nil)
	if resp.StatusCode != 200 || int64(len(body)) != ready.Size {
		t.Errorf("the delta download: %d, %d bytes", resp.StatusCode, len(body))
	}
	if _, a = check(map[string]string{"home": "0.9.0"}); len(a.Offline) != 1 || a.Offline[0].Delta != nil {
		t.Errorf("a device holding a version without a delta is told %+v", a.Offline)
	}
	if _, a = check(map[string]string{"home": "1.2.0"}); len(a.Offline) != 0 {
		t.Errorf("a device holding a newer version is told %+v", a.Offline)
	}

	// The node's builder counts what it did.
	_, metrics := e.request("GET", "/metrics", "", nil)
	for _, want := range []string{`mds_delta_builds_total{status="ready"} 1\n`, `mds_deltas_building 0\n`, `mds_delta_build_seconds_total [0-9.e-]+\n`,
		`mds_checks_total{outcome="offline"} [1-9]`} {
		if !regexp.MustCompile(want).Match(metrics) {
			t.Errorf("metrics lack %s", want)
		}
	}

	stranger := e.createToken(e.admin, "stranger", grant("blog", mds.RoleAdmin))
	if resp, _ := e.request("GET", "/api/v1/apps/shop/offline/deltas", stranger, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another app's token lists shop's deltas: %d", resp.StatusCode)
	}
	e.call("GET", "/api/v1/apps/shop/offline/deltas?package=Not_An_ID", e.admin, nil, 400, nil)
}
