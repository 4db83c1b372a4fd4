package cli_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/signing"
)

// offlineTeam is an app "shop" on a test server with a team key
// registered, in a directory of the test's.
type offlineTeam struct {
	t      *testing.T
	srv    *httpapitest.Server
	dir    string
	pub    *signing.PublicKey
	appKey string
}

func newOfflineTeam(t *testing.T) *offlineTeam {
	srv := httpapitest.Start(t)
	o := &offlineTeam{t: t, srv: srv, dir: t.TempDir()}
	mustCLI(t, srv.URL, cliAdmin, "app", "create", "shop", "--platform", "android,ios")
	o.appKey = strings.TrimSpace(mustCLI(t, srv.URL, cliAdmin, "app", "show", "shop", "--field", "key"))
	mustCLI(t, srv.URL, cliAdmin, "keys", "generate", "--out", o.at("team"))
	mustCLI(t, srv.URL, cliAdmin, "keys", "add", "--app", "shop", o.at("team.pub.pem"))
	b, _ := os.ReadFile(o.at("team.pub.pem"))
	pub, err := signing.ParsePublicKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	o.pub = pub
	return o
}

func (o *offlineTeam) at(name string) string { return filepath.Join(o.dir, name) }

// pack packs version v of package pkg, a test site, with mds offline pack
// and returns the file it wrote.
func (o *offlineTeam) pack(pkg, v string, flags ...string) (file, out string) {
	o.t.Helper()
	src := o.at("site-" + pkg + "-" + v)
	bundletest.WriteFiles(o.t, src, offlinetest.Site(v, 200_000))
	file = o.at(pkg + "-" + v + ".zip")
	args := append([]string{"offline", "pack", src, "--key", o.at("team.pem"), "--app", "shop", "--package", pkg, "--version", v,
		"--host", "https://" + pkg + ".shop.example", "--fallback", "https://cdn.shop.example/" + pkg + "/", "-o", file}, flags...)
	return file, mustCLI(o.t, o.srv.URL, cliAdmin, args...)
}

// push pushes file with mds offline push.
func (o *offlineTeam) push(file string) *api.Package {
	o.t.Helper()
	var p api.Package
	if err := json.Unmarshal([]byte(mustCLI(o.t, o.srv.URL, cliAdmin, "offline", "push", file, "--app", "shop", "--json")), &p); err != nil {
		o.t.Fatal(err)
	}
	if p.Offline == nil {
		o.t.Fatalf("pushed %+v", p)
	}
	return &p
}

// release makes a live task of package p with targeting tg.
func (o *offlineTeam) release(p *api.Package, tg mds.Targeting) *api.Task {
	o.t.Helper()
	task, err := client.New(o.srv.URL, cliAdmin).CreateTask(o.t.Context(), "shop", api.CreateTask{PackageID: p.ID, Targeting: tg, Release: true})
	if err != nil {
		o.t.Fatal(err)
	}
	return task
}

// TestCLIOfflineFlow: offline packages packed, verified and pushed from
// the command line; the delta between two official releases followed
// with status until it is built; and the preset exported of the newest
// official release of each package, which the device reads, whose files
// verify with the team's key and hash to what the preset says.
func TestCLIOfflineFlow(t *testing.T) {
	o := newOfflineTeam(t)
	url := o.srv.URL

	commonFile, out := o.pack("common", "1.0.0", "--type", "global")
	for _, want := range []string{"wrote", commonFile, "sha256", "common 1.0.0 (global)", "files         4 (", "key id        " + o.pub.ID()} {
		if !strings.Contains(out, want) {
			t.Errorf("pack printed no %q:\n%s", want, out)
		}
	}
	if _, err := mdsCLI(t, url, cliAdmin, "offline", "pack", o.at("site-common-1.0.0"), "--key", o.at("team.pem"), "--app", "shop",
		"--package", "common", "--version", "1.0.0", "--host", "https://common.shop.example", "--fallback", "https://cdn.shop.example/",
		"-o", commonFile); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("packing over a file: %v", err)
	}
	homeFile, out := o.pack("shop-home", "1.0.0", "--requires", "common", "--app-versions", "2.0..2.9", "--app-versions", "3.0..",
		"--network", "wifi", "--preload", "--notes", "Home")
	for _, want := range []string{"requires      common", "app versions  2.0..2.9, 3.0..", "network       wifi", "preload       true"} {
		if !strings.Contains(out, want) {
			t.Errorf("pack printed no %q:\n%s", want, out)
		}
	}
	out = mustCLI(t, url, cliAdmin, "offline", "verify", homeFile, "--pub", o.at("team.pub.pem"))
	if !strings.Contains(out, "good (key "+o.pub.ID()) || !strings.Contains(out, "serves        https://shop-home.shop.example/index.html") {
		t.Errorf("verify:\n%s", out)
	}
	other, _ := signing.Generate(signing.ECDSAP256)
	os.WriteFile(o.at("other.pub.pem"), other.Public().MarshalPEM(), 0o644)
	if _, err := mdsCLI(t, url, cliAdmin, "offline", "verify", homeFile, "--pub", o.at("other.pub.pem")); err == nil {
		t.Error("verify with another key passed")
	}

	common := o.push(commonFile)
	out = mustCLI(t, url, cliAdmin, "offline", "push", homeFile, "--app", "shop")
	id := regexp.MustCompile(`package\s+(\d+)\n`).FindStringSubmatch(out)
	if id == nil || !strings.Contains(out, "shop-home 1.0.0 (normal)") || !strings.Contains(out, "mds task create --app shop --package "+id[1]) {
		t.Fatalf("push printed:\n%s", out)
	}
	if common.Offline.Type != mds.OfflineGlobal || common.Offline.KeyID != o.pub.ID() {
		t.Errorf("common pushed as %+v", common.Offline)
	}
	list, err := client.New(url, cliAdmin).PackagesOfKind(t.Context(), "shop", mds.KindOffline, client.Page{})
	if err != nil || len(list.Packages) != 2 {
		t.Fatalf("offline packages listed: %v %+v", err, list)
	}
	home1 := list.Packages[0]
	if home1.Offline.Package != "shop-home" || home1.Offline.Network != mds.NetworkWiFi || !home1.Offline.Preload || len(home1.Offline.AppVersions) != 2 {
		t.Errorf("shop-home pushed as %+v", home1.Offline)
	}
	o.release(common, mds.Targeting{})
	o.release(home1, mds.Targeting{})
	if out := mustCLI(t, url, cliAdmin, "offline", "status", "--app", "shop"); !strings.Contains(out, "no deltas") {
		t.Errorf("status before a second version:\n%s", out)
	}

	// A second version released: the delta from the first is built in
	// the background.
	home2File, _ := o.pack("shop-home", "1.1.0", "--requires", "common")
	home2 := o.push(home2File)
	o.release(home2, mds.Targeting{})
	deadline := time.Now().Add(10 * time.Second)
	for out = ""; !strings.Contains(out, "ready"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delta was not built within 10 s:\n%s", out)
		}
		out = mustCLI(t, url, cliAdmin, "offline", "status", "--app", "shop", "--package", "shop-home")
	}
	row := regexp.MustCompile(`shop-home\s+1\.0\.0→1\.1\.0\s+ready\s+\d+ \(\d+\.\d%\)\s+1\s+\d+\s*\n`)
	if !row.MatchString(out) || !strings.HasSuffix(out, "\n1 ready\n") {
		t.Errorf("status:\n%s", out)
	}
	var deltas api.Deltas
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "offline", "status", "--app", "shop", "--json")), &deltas); err != nil {
		t.Fatal(err)
	}
	if len(deltas.Deltas) != 1 || deltas.Deltas[0].From != home1.ID || deltas.Deltas[0].To != home2.ID || deltas.Deltas[0].Size >= home2.Offline.Size {
		t.Errorf("status --json: %+v", deltas.Deltas)
	}

	// A third version released gray, and a package never released, are
	// not exported.
	home3File, _ := o.pack("shop-home", "1.2.0")
	o.release(o.push(home3File), mds.Targeting{Rollout: &mds.Rollout{Percent: 5}})
	promoFile, _ := o.pack("promo", "1.0.0")
	o.push(promoFile)

	presetDir := o.at("preset")
	out = mustCLI(t, url, cliAdmin, "offline", "export", "--app", "shop", "--out", presetDir)
	if !strings.Contains(out, "skipped promo") || !strings.Contains(out, "(2 packages)") {
		t.Errorf("export printed:\n%s", out)
	}
	p, err := offline.ReadPreset(presetDir)
	if err != nil {
		t.Fatal(err)
	}
	if p.AppKey != o.appKey || len(p.Packages) != 2 {
		t.Fatalf("preset %+v", p)
	}
	for i, want := range []*api.Package{common, home2} {
		got := p.Packages[i]
		if got.Package != want.Offline.Package || got.Version != want.Version || got.PackageID != want.ID || got.Type != want.Offline.Type ||
			got.SHA256 != want.Offline.SHA256 || got.CanonicalSHA256 != want.Offline.CanonicalSHA256 || got.CanonicalSize != want.Offline.CanonicalSize {
			t.Errorf("preset package %d: %+v, want package %d %+v", i, got, want.ID, want.Offline)
		}
		b, err := os.ReadFile(filepath.Join(presetDir, got.File))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != got.SHA256 {
			t.Errorf("%s does not hash to the preset's sha256", got.File)
		}
		pkg, err := offline.Open(bytes.NewReader(b), int64(len(b)), offline.Limits)
		if err == nil {
			err = pkg.Verify(o.pub)
		}
		if err == nil {
			err = pkg.CheckFiles()
		}
		if err != nil || pkg.Manifest.Version != got.Version {
			t.Errorf("%s: %v", got.File, err)
		}
	}
	entries, _ := os.ReadDir(presetDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"common@1.0.0.zip", "preset.json", "shop-home@1.1.0.zip"}) {
		t.Errorf("the preset directory holds %v", names)
	}

	var one offline.Preset
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "offline", "export", "--app", "shop", "--out", o.at("one"),
		"--package", "shop-home", "--json")), &one); err != nil {
		t.Fatal(err)
	}
	// It comes with the global it requires, as devices get it.
	if len(one.Packages) != 2 || one.Packages[0].Package != "common" || one.Packages[1].Version != "1.1.0" {
		t.Errorf("export --package shop-home: %+v", one)
	}
	for pkg, want := range map[string]string{"nope": "no offline package nope", "promo": "nothing to export"} {
		if _, err := mdsCLI(t, url, cliAdmin, "offline", "export", "--app", "shop", "--out", o.at("none"), "--package", pkg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("export --package %s: %v, want %q", pkg, err, want)
		}
	}
	if _, err := os.Stat(o.at("none")); !os.IsNotExist(err) {
		t.Errorf("a failed export made its directory: %v", err)
	}
}

// TestCLIOfflineExportAltered: a file altered on its way from the server
// is refused, and nothing of the preset is written.
func TestCLIOfflineExportAltered(t *testing.T) {
	o := newOfflineTeam(t)
	file, _ := o.pack("shop-home", "1.0.0")
	o.release(o.push(file), mds.Targeting{})
	altering := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/file") {
			o.srv.API.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		o.srv.API.ServeHTTP(rec, r)
		b := rec.Body.Bytes()
		b[len(b)/2] ^= 1
		w.Write(b)
	}))
	defer altering.Close()
	dir := o.at("preset")
	_, err := mdsCLI(t, altering.URL, cliAdmin, "offline", "export", "--app", "shop", "--out", dir)
	if err == nil || !strings.Contains(err.Error(), "is not the package") {
		t.Fatalf("export of an altered download: %v", err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after a refused download the preset directory holds %v (%v)", entries, err)
	}
}

// TestCLIOfflinePushTampered: a package one of whose files was changed
// after signing is refused by the server, which says why, and stores
// nothing: there is nothing to export.
func TestCLIOfflinePushTampered(t *testing.T) {
	o := newOfflineTeam(t)
	file, _ := o.pack("shop-home", "1.0.0")
	tampered := o.at("tampered.zip")
	os.WriteFile(tampered, swapFile(t, file, "index.html", []byte("<script>steal()</script>")), 0o644)
	if _, err := mdsCLI(t, o.srv.URL, cliAdmin, "offline", "verify", tampered, "--pub", o.at("team.pub.pem")); err == nil {
		t.Error("verify passed a tampered package")
	}
	_, err := mdsCLI(t, o.srv.URL, cliAdmin, "offline", "push", tampered, "--app", "shop")
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: ") || !strings.Contains(err.Error(), "index.html") {
		t.Fatalf("push of a tampered package: %v", err)
	}
	list, err := client.New(o.srv.URL, cliAdmin).PackagesOfKind(t.Context(), "shop", "", client.Page{})
	if err != nil || len(list.Packages) != 0 {
		t.Errorf("after a refused push the app lists %+v (%v)", list, err)
	}
	if _, err := mdsCLI(t, o.srv.URL, cliAdmin, "offline", "export", "--app", "shop", "--out", o.at("preset")); err == nil || !strings.Contains(err.Error(), "has no offline package") {
		t.Errorf("export of an app without offline packages: %v", err)
	}
}

// swapFile returns the package in file with the content of the file at
// path replaced, its manifest and signature kept.
func swapFile(t *testing.T, file, path string, content []byte) []byte {
	t.Helper()
	r, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var entries []bundletest.Entry
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == bundle.FilesPrefix+path {
			b = content
		}
		entries = append(entries, bundletest.Entry{Name: f.Name, Content: b, Method: f.Method})
	}
	return bundletest.BuildZip(t, entries)
}
