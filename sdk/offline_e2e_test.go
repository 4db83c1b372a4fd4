package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/delta"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/sdk"
)

// siteSize is how large the script of the test site is: large enough
// that a delta is a small share of the package.
const siteSize = 300_000

// pushOffline packs version v of package pkg (of type typ, requiring
// requires) with the site's files of version v, and uploads it.
func (w *world) pushOffline(pkg, v string, typ mds.OfflineType, requires ...string) *api.Package {
	w.t.Helper()
	m := offlinetest.Manifest(w.app.Key, pkg, v)
	m.Type, m.Requires = typ, requires
	b := offlinetest.Pack(w.t, offlinetest.Site(v, siteSize), m, w.team)
	p, err := w.mgmt.PushOffline(w.t.Context(), "shop", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// deltaReady waits, a bounded time, for the delta from version from of
// package pkg to version to to be ready, and returns it.
func (w *world) deltaReady(pkg, from, to string) *mds.Delta {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		list, err := w.mgmt.Deltas(w.t.Context(), "shop", pkg)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, d := range list.Deltas {
			if d.FromVersion == from && d.ToVersion == to && d.Status != mds.DeltaPending && d.Status != mds.DeltaBuilding {
				if d.Status != mds.DeltaReady {
					w.t.Fatalf("delta %s→%s: %s (%s)", from, to, d.Status, d.Reason)
				}
				// The builder refreshes the node right after recording
				// it; this check may come between the two.
				if err := w.srv.Live.Refresh(w.t.Context()); err != nil {
					w.t.Fatal(err)
				}
				return d
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("delta %s→%s of %s not built within 20 s: %+v", from, to, pkg, list.Deltas)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// installAll checks and installs every offline package offered.
func installAll(t *testing.T, c *sdk.Client) []sdk.OfflineResult {
	t.Helper()
	a, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.InstallOffline(context.Background(), a, sdk.OfflineOptions{WiFi: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("installing %s %s: %v", r.Package, r.Version, r.Err)
		}
	}
	return res
}

// how renders results as "package version how", one per package.
func how(res []sdk.OfflineResult) string {
	var out []string
	for _, r := range res {
		out = append(out, r.Package+" "+r.Version+" "+r.How)
	}
	return strings.Join(out, ", ")
}

// serves asserts that c serves the site of version v of package pkg: its
// script resolves to a local file holding exactly that version's bytes.
func serves(t *testing.T, c *sdk.Client, pkg, v string) {
	t.Helper()
	res, err := c.Resolve("https://" + pkg + ".shop.example/assets/app.js?cache=1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Package != pkg || res.Version != v || res.File == "" {
		t.Fatalf("the script of %s resolves to %+v, want version %s's file", pkg, res, v)
	}
	got, err := os.ReadFile(res.File)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, offlinetest.Site(v, siteSize)["assets/app.js"]) {
		t.Fatalf("%s serves a script that is not version %s's", pkg, v)
	}
	entry, err := c.Resolve("https://" + pkg + ".shop.example/")
	if err != nil || entry.File == "" || filepath.Base(entry.File) != "index.html" {
		t.Errorf("the host's root resolves to %+v, %v; want the entry page", entry, err)
	}
}

// TestOfflineLifecycle: a gray offline package reaches its tester and no
// one else, then everyone; a device holding the previous version gets a
// delta, rebuilds the new version from it and serves its files; a fresh
// device gets the full package; a URL the package does not hold falls
// back; a device whose installed files were altered, or that gets a
// corrupted delta, falls back to the full package.
func TestOfflineLifecycle(t *testing.T) {
	w := newWorld(t)
	v1 := w.pushOffline("home", "1.0.0", mds.OfflineNormal)
	gray := w.release(v1, "tester")
	tester := w.device("tester", "2.1.0", "")
	other := w.device("other", "2.1.0", "")
	if got := how(installAll(t, tester)); got != "home 1.0.0 full" {
		t.Fatalf("the tester installed %q", got)
	}
	serves(t, tester, "home", "1.0.0")
	if got := how(installAll(t, other)); got != "" {
		t.Fatalf("a device outside the gray release installed %q", got)
	}
	w.act(gray, mds.ActionPromote)
	if got := how(installAll(t, other)); got != "home 1.0.0 full" {
		t.Fatalf("after promotion the other device installed %q", got)
	}
	if got := how(installAll(t, tester)); got != "" {
		t.Fatalf("a device holding the version was offered %q", got)
	}

	// Version 2, gray to the tester: it gets the delta from 1.0.0.
	v2 := w.pushOffline("home", "1.1.0", mds.OfflineNormal)
	gray2 := w.release(v2, "tester")
	d := w.deltaReady("home", "1.0.0", "1.1.0")
	a, err := tester.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Offline) != 1 || a.Offline[0].Delta == nil || a.Offline[0].Delta.From != "1.0.0" || a.Offline[0].Delta.SHA256 != d.SHA256 {
		t.Fatalf("the answer to a device holding 1.0.0: %+v", a.Offline)
	}
	res, err := tester.InstallOffline(t.Context(), a, sdk.OfflineOptions{WiFi: true})
	if err != nil || len(res) != 1 || res[0].Err != nil || res[0].How != sdk.InstalledByDelta || res[0].Bytes != d.Size || res[0].From != "1.0.0" {
		t.Fatalf("installing by delta: %+v, %v", res, err)
	}
	if d.Size*10 > v2.Offline.Size {
		t.Errorf("a delta of %d bytes for a package of %d: the sites differ in a few lines", d.Size, v2.Offline.Size)
	}
	serves(t, tester, "home", "1.1.0")
	if st := tester.Offline(); len(st) != 1 || st[0].Previous != "1.0.0" {
		t.Errorf("installed %+v; the previous version is kept", st)
	}
	fb, err := tester.Resolve("https://home.shop.example/api/cart?id=7")
	if err != nil || fb.File != "" || fb.Fallback != "https://cdn.shop.example/home/api/cart?id=7" {
		t.Errorf("a path the package lacks resolves to %+v, %v", fb, err)
	}
	if net, err := tester.Resolve("https://elsewhere.example/app.js"); err != nil || net.Package != "" {
		t.Errorf("another host resolves to %+v, %v", net, err)
	}

	// Promoted: a fresh device gets the full package.
	w.act(gray2, mds.ActionPromote)
	fresh := w.device("fresh", "2.1.0", "")
	if got := how(installAll(t, fresh)); got != "home 1.1.0 full" {
		t.Fatalf("a fresh device installed %q", got)
	}
	serves(t, fresh, "home", "1.1.0")

	// Version 3. A device whose installed script was altered cannot
	// rebuild its version: it falls back to the full package.
	w.release(w.pushOffline("home", "1.2.0", mds.OfflineNormal))
	w.deltaReady("home", "1.1.0", "1.2.0")
	script, err := fresh.Resolve("https://home.shop.example/assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(script.File, 0o644)
	if err := os.WriteFile(script.File, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = installAll(t, fresh)
	if len(res) != 1 || res[0].How != sdk.InstalledInFull || !strings.Contains(res[0].DeltaError, "installed files of home 1.1.0") {
		t.Fatalf("a device with altered files: %+v", res)
	}
	serves(t, fresh, "home", "1.2.0")

	// A delta corrupted on the way is refused; the full package is used.
	w.proxy.onBlob(func(b []byte) []byte {
		if bytes.HasPrefix(b, []byte(delta.Magic)) {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0xff
		}
		return b
	})
	res = installAll(t, tester)
	w.proxy.honest()
	if len(res) != 1 || res[0].How != sdk.InstalledInFull || !strings.Contains(res[0].DeltaError, "sha256") {
		t.Fatalf("a corrupted delta: %+v", res)
	}
	serves(t, tester, "home", "1.2.0")
}

// TestOfflineUnknownBase: a device holding a version no delta is built
// from (here, with deltas from the last released version only, one
// released two versions ago) is offered the full package.
func TestOfflineUnknownBase(t *testing.T) {
	w := newWorld(t)
	w.srv.Store.(interface{ SetDeltaBases(int) }).SetDeltaBases(1)
	w.release(w.pushOffline("home", "1.0.0", mds.OfflineNormal))
	dev := w.device("d", "2.1.0", "")
	if got := how(installAll(t, dev)); got != "home 1.0.0 full" {
		t.Fatalf("installed %q", got)
	}
	w.release(w.pushOffline("home", "1.1.0", mds.OfflineNormal))
	w.deltaReady("home", "1.0.0", "1.1.0")
	w.release(w.pushOffline("home", "1.2.0", mds.OfflineNormal))
	w.deltaReady("home", "1.1.0", "1.2.0")
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Offline) != 1 || a.Offline[0].Version != "1.2.0" || a.Offline[0].Delta != nil {
		t.Fatalf("a device holding 1.0.0 is offered %+v; want 1.2.0 whole", a.Offline)
	}
	if got := how(installAll(t, dev)); got != "home 1.2.0 full" {
		t.Fatalf("installed %q", got)
	}
	serves(t, dev, "home", "1.2.0")
}

// TestOfflineGlobals: a package that requires a global one is offered
// with it, both are installed, the global first and once for all the
// packages that need it, and its URLs resolve from its own host.
func TestOfflineGlobals(t *testing.T) {
	w := newWorld(t)
	w.release(w.pushOffline("home", "1.0.0", mds.OfflineNormal, "common"))
	w.release(w.pushOffline("cart", "1.0.0", mds.OfflineNormal, "common"))
	dev := w.device("d", "2.1.0", "")
	// Without its global live, neither is offered.
	if got := how(installAll(t, dev)); got != "" {
		t.Fatalf("packages without their global installed: %q", got)
	}
	w.release(w.pushOffline("common", "3.0.0", mds.OfflineGlobal))
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Installing only cart brings the global it requires along.
	res, err := dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{WiFi: true, Packages: []string{"cart"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := how(res); got != "common 3.0.0 full, cart 1.0.0 full, home 1.0.0 skipped" {
		t.Fatalf("installed %q", got)
	}
	if got := how(installAll(t, dev)); got != "home 1.0.0 full" {
		t.Fatalf("then installed %q; the global is not installed twice", got)
	}
	for _, p := range []string{"common", "cart", "home"} {
		serves(t, dev, p, map[string]string{"common": "3.0.0"}[p]+map[bool]string{true: "1.0.0"}[p != "common"])
	}
	if n := len(dev.Offline()); n != 3 {
		t.Errorf("%d packages installed, want 3", n)
	}
}

// TestOfflineWiFiOnly: a package to download on Wi-Fi only waits for it.
func TestOfflineWiFiOnly(t *testing.T) {
	w := newWorld(t)
	m := offlinetest.Manifest(w.app.Key, "video", "1.0.0")
	m.Network = mds.NetworkWiFi
	b := offlinetest.Pack(t, offlinetest.Site("1.0.0", 1000), m, w.team)
	p, err := w.mgmt.PushOffline(t.Context(), "shop", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	w.release(p)
	dev := w.device("d", "2.1.0", "")
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{})
	if err != nil || how(res) != "video 1.0.0 skipped" || len(dev.Offline()) != 0 {
		t.Fatalf("on a cellular network: %+v, %v", res, err)
	}
	res, err = dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{WiFi: true})
	if err != nil || how(res) != "video 1.0.0 full" {
		t.Fatalf("on Wi-Fi: %+v, %v", res, err)
	}
}

// TestOfflinePreset: a fresh install starts from the packages its build
// carries, checked like a download, and its first check is offered the
// delta from them; a preset of another app, or a file not the one listed,
// is refused.
func TestOfflinePreset(t *testing.T) {
	w := newWorld(t)
	m := offlinetest.Manifest(w.app.Key, "home", "1.0.0")
	file := offlinetest.Pack(t, offlinetest.Site("1.0.0", siteSize), m, w.team)
	v1, err := w.mgmt.PushOffline(t.Context(), "shop", bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	w.release(v1)
	dir := t.TempDir()
	preset := offline.Preset{Format: offline.PresetFormat, AppKey: w.app.Key, Packages: []offline.PresetPackage{{
		Package: "home", Version: "1.0.0", PackageID: v1.ID, Type: mds.OfflineNormal, File: offline.PresetFileName("home", "1.0.0"),
		Size: v1.Offline.Size, SHA256: v1.Offline.SHA256, CanonicalSize: v1.Offline.CanonicalSize, CanonicalSHA256: v1.Offline.CanonicalSHA256}}}
	write := func(p offline.Preset, file []byte) {
		t.Helper()
		b, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, offline.PresetFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.Packages[0].File), file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dev := w.device("d", "2.1.0", "")
	other := preset
	other.AppKey = "ak_other"
	write(other, file)
	if _, err := dev.InstallPreset(dir); !errors.Is(err, sdk.ErrBadOffline) {
		t.Errorf("another app's preset: %v", err)
	}
	swapped := bytes.Clone(file)
	swapped[len(swapped)/2] ^= 1
	write(preset, swapped)
	if res, err := dev.InstallPreset(dir); err != nil || len(res) != 1 || !errors.Is(res[0].Err, sdk.ErrHashMismatch) || len(dev.Offline()) != 0 {
		t.Errorf("a preset file not the one listed: %+v, %v", res, err)
	}
	write(preset, file)
	if res, err := dev.InstallPreset(dir); err != nil || how(res) != "home 1.0.0 full" || res[0].Err != nil {
		t.Fatalf("installing the preset: %+v, %v", res, err)
	}
	serves(t, dev, "home", "1.0.0")
	if got := how(installAll(t, dev)); got != "" {
		t.Fatalf("a device holding the preset's version was offered %q", got)
	}
	w.release(w.pushOffline("home", "1.1.0", mds.OfflineNormal))
	w.deltaReady("home", "1.0.0", "1.1.0")
	if res := installAll(t, dev); how(res) != "home 1.1.0 delta" {
		t.Fatalf("after the preset, installed %+v", res)
	}
	serves(t, dev, "home", "1.1.0")
	// The preset again: its version is older than the one held.
	if res, err := dev.InstallPreset(dir); err != nil || how(res) != "home 1.0.0 skipped" {
		t.Errorf("the preset over a newer version: %+v, %v", res, err)
	}
}

// pushFiles packs version v of package pkg holding files, and uploads it.
func (w *world) pushFiles(pkg, v string, files map[string][]byte, edit func(*offline.Manifest)) *api.Package {
	w.t.Helper()
	m := offlinetest.Manifest(w.app.Key, pkg, v)
	if edit != nil {
		edit(&m)
	}
	b := offlinetest.Pack(w.t, files, m, w.team)
	p, err := w.mgmt.PushOffline(w.t.Context(), "shop", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// TestOfflineResolvesPrevious: a file only the version before holds (a
// chunk named by its hash, which a page loaded before the install still
// asks for) is served from it, kept for that.
func TestOfflineResolvesPrevious(t *testing.T) {
	w := newWorld(t)
	site := func(chunk string) map[string][]byte {
		files := offlinetest.Site("1", 20_000)
		files["assets/"+chunk+".js"] = []byte("chunk " + chunk)
		return files
	}
	w.release(w.pushFiles("home", "1.0.0", site("c0ffee"), nil))
	dev := w.device("d", "2.1.0", "")
	installAll(t, dev)
	w.release(w.pushFiles("home", "1.1.0", site("beef42"), nil))
	installAll(t, dev)
	for path, want := range map[string]string{"assets/beef42.js": "1.1.0", "assets/c0ffee.js": "1.0.0"} {
		res, err := dev.Resolve("https://home.shop.example/" + path)
		if err != nil || res.Version != want || res.File == "" {
			t.Errorf("%s resolves to %+v, %v; want version %s's file", path, res, err, want)
			continue
		}
		if b, _ := os.ReadFile(res.File); !strings.HasSuffix(path, string(b)[len("chunk "):]+".js") {
			t.Errorf("%s is served %q", path, b)
		}
	}
	if res, err := dev.Resolve("https://home.shop.example/assets/gone.js"); err != nil || res.File != "" || res.Fallback == "" {
		t.Errorf("a file neither holds resolves to %+v, %v", res, err)
	}
}

// TestOfflineDependents: a package whose global could not be installed
// now (Wi-Fi only, on a cellular network) waits with it, and one answer
// is followed for both kinds: installing offline packages does not stale
// it for the hotpatch.
func TestOfflineDependents(t *testing.T) {
	w := newWorld(t)
	w.release(w.pushFiles("common", "1.0.0", offlinetest.Site("1", 2000), func(m *offline.Manifest) {
		m.Type, m.Network = mds.OfflineGlobal, mds.NetworkWiFi
	}))
	w.release(w.pushFiles("home", "1.0.0", offlinetest.Site("1", 2000), func(m *offline.Manifest) { m.Requires = []string{"common"} }))
	w.release(w.push(w.team, 1))
	dev := w.device("d", "2.1.0", "")
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{})
	if err != nil || len(res) != 2 || res[0].How != sdk.InstallSkipped || res[1].How != sdk.InstallSkipped || res[1].WaitsFor != "common" ||
		res[1].Err != nil || len(dev.Offline()) != 0 {
		t.Fatalf("on a cellular network: %+v, %v", res, err)
	}
	if res, err = dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{WiFi: true}); err != nil || how(res) != "common 1.0.0 full, home 1.0.0 full" {
		t.Fatalf("on Wi-Fi: %+v, %v", res, err)
	}
	if r, err := dev.Apply(t.Context(), a); err != nil || r.Outcome != sdk.OutcomeApplied {
		t.Fatalf("the same answer's hotpatch after installing its offline packages: %+v, %v", r, err)
	}
}

// TestOfflineDeltaResumed: a delta download cut short is not a reason to
// fetch the whole package: the install fails, keeps what it has, and the
// next one resumes the delta.
func TestOfflineDeltaResumed(t *testing.T) {
	w := newWorld(t)
	w.release(w.pushOffline("home", "1.0.0", mds.OfflineNormal))
	dev := w.device("d", "2.1.0", "")
	installAll(t, dev)
	w.release(w.pushOffline("home", "1.1.0", mds.OfflineNormal))
	d := w.deltaReady("home", "1.0.0", "1.1.0")
	w.proxy.cutBlob(func(b []byte) bool { return bytes.HasPrefix(b, []byte(delta.Magic)) })
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{})
	w.proxy.honest()
	if err != nil || len(res) != 1 || res[0].Err == nil || res[0].How != "" || res[0].Bytes >= d.Size || len(dev.Offline()) != 1 || dev.Offline()[0].Version != "1.0.0" {
		t.Fatalf("a delta cut short: %+v, %v", res, err)
	}
	res, err = dev.InstallOffline(t.Context(), a, sdk.OfflineOptions{})
	if err != nil || how(res) != "home 1.1.0 delta" {
		t.Fatalf("resumed: %+v, %v", res, err)
	}
	serves(t, dev, "home", "1.1.0")
}
