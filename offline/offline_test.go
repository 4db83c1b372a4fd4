package offline_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/version"
)

func key(t testing.TB) *signing.PrivateKey {
	t.Helper()
	k, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t testing.TB, b []byte) *offline.Package {
	t.Helper()
	p, err := offline.Open(bytes.NewReader(b), int64(len(b)), offline.Limits)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPackOpen: a packed package opens, verifies with its key and no
// other, says what it was packed with, and packs to the same bytes again.
func TestPackOpen(t *testing.T) {
	k := key(t)
	m := offlinetest.Manifest("ak_shop", "home", "1.4.0")
	m.Requires = []string{"fonts", "common"}
	m.AppVersions = []version.Range{{Min: "2.0"}}
	m.Preload, m.Network = true, mds.NetworkWiFi
	files := offlinetest.Site("1.4.0", 20_000)
	b := offlinetest.Pack(t, files, m, k)
	// Ed25519 signatures are deterministic; ECDSA ones are not.
	ed, err := signing.Generate(signing.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if once, again := offlinetest.Pack(t, files, m, ed), offlinetest.Pack(t, files, m, ed); !bytes.Equal(once, again) {
		t.Error("packing the same files twice gives other bytes")
	}
	p := open(t, b)
	if err := p.Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(key(t).Public()); !errors.Is(err, bundle.ErrWrongKey) {
		t.Errorf("another key verifies it: %v", err)
	}
	got := p.Manifest
	if got.Format != offline.Format || got.Package != "home" || got.Version != "1.4.0" || strings.Join(got.Requires, ",") != "common,fonts" ||
		!got.Preload || got.Network != mds.NetworkWiFi || got.KeyID != k.Public().ID() || len(got.Files) != 4 || got.Created() != offlinetest.Packed {
		t.Errorf("manifest %+v", got)
	}
	if err := p.CheckFiles(); err != nil {
		t.Error(err)
	}
	spec := got.Spec("ab", 10, "cd", 20)
	if spec.Package != "home" || spec.Files != 4 || spec.FilesSize == 0 || spec.SignedAt != offlinetest.Packed || !spec.Preload {
		t.Errorf("spec %+v", spec)
	}
}

// TestManifestRefusals: a manifest says what is wrong with it, and Pack
// refuses to sign it.
func TestManifestRefusals(t *testing.T) {
	k := key(t)
	files := offlinetest.Site("1.0.0", 1000)
	for name, mutate := range map[string]func(*offline.Manifest){
		"no app key":         func(m *offline.Manifest) { m.AppKey = "" },
		"bad version":        func(m *offline.Manifest) { m.Version = "1..0" },
		"bad package":        func(m *offline.Manifest) { m.Package = "Home" },
		"bad type":           func(m *offline.Manifest) { m.Type = "shared" },
		"host with a path":   func(m *offline.Manifest) { m.Host = "https://h5.example/app" },
		"entry not a file":   func(m *offline.Manifest) { m.Entry = "/main.html" },
		"relative fallback":  func(m *offline.Manifest) { m.Fallback = "cdn/" },
		"global requiring":   func(m *offline.Manifest) { m.Type, m.Requires = mds.OfflineGlobal, []string{"fonts"} },
		"requiring itself":   func(m *offline.Manifest) { m.Requires = []string{"home"} },
		"bad range":          func(m *offline.Manifest) { m.AppVersions = []version.Range{{Min: "3", Max: "2"}} },
		"bad network":        func(m *offline.Manifest) { m.Network = "lte" },
		"notes not text":     func(m *offline.Manifest) { m.Notes = "\x00" },
		"app key of 300 B":   func(m *offline.Manifest) { m.AppKey = strings.Repeat("k", 300) },
		"requires 17 others": func(m *offline.Manifest) { m.Requires = strings.Split("a b c d e f g h i j k l m n o p q", " ") },
	} {
		m := offlinetest.Manifest("ak_shop", "home", "1.0.0")
		mutate(&m)
		dir := t.TempDir()
		bundletest.WriteFiles(t, dir, files)
		var buf bytes.Buffer
		if _, err := offline.Pack(&buf, m, dir, k, offlinetest.Packed); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: packed with %v", name, err)
		}
	}
}

// TestParseManifestCanonical: manifest.json is read in canonical form
// only: the bytes Encode writes, nothing reordered, added or spaced.
func TestParseManifestCanonical(t *testing.T) {
	p := open(t, offlinetest.Pack(t, offlinetest.Site("1.0.0", 1000), offlinetest.Manifest("ak", "home", "1.0.0"), key(t)))
	mb := p.ManifestBytes
	if _, err := offline.ParseManifest(mb); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"spaced":         bytes.Replace(mb, []byte(`,"version"`), []byte(`, "version"`), 1),
		"unknown field":  bytes.Replace(mb, []byte(`{"format"`), []byte(`{"x":1,"format"`), 1),
		"empty requires": bytes.Replace(mb, []byte(`,"network"`), []byte(`,"requires":[],"network"`), 1),
		"other format":   bytes.Replace(mb, []byte(offline.Format), []byte("mds-hotpatch/1"), 1),
	} {
		if _, err := offline.ParseManifest(b); mds.ErrorCode(err) != mds.EINVALID {
			t.Errorf("%s: parsed, %v", name, err)
		}
	}
}

// TestCanonicalForm: the canonical form of a package hashes the same
// whether made from the package or from its files on disk, and is itself
// a package that opens and verifies.
func TestCanonicalForm(t *testing.T) {
	k := key(t)
	files := offlinetest.Site("2.0.0", 50_000)
	p := open(t, offlinetest.Pack(t, files, offlinetest.Manifest("ak", "home", "2.0.0"), k))
	var fromPkg bytes.Buffer
	n, err := p.WriteCanonical(&fromPkg)
	if err != nil {
		t.Fatal(err)
	}
	if n != bundle.CanonicalSize(len(p.ManifestBytes), len(p.Signature), p.Manifest.Files) {
		t.Errorf("canonical form of %d bytes; CanonicalSize says otherwise", n)
	}
	var fromFiles bytes.Buffer
	_, err = bundle.WriteCanonical(&fromFiles, p.ManifestBytes, p.Signature, p.Manifest.Files, func(path string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(files[path])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fromPkg.Bytes(), fromFiles.Bytes()) {
		t.Error("the canonical form from the package differs from the one from its files")
	}
	c, err := offline.Open(bytes.NewReader(fromPkg.Bytes()), int64(fromPkg.Len()), offline.CanonicalLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(k.Public()); err != nil {
		t.Error(err)
	}
	sum := sha256.Sum256(fromPkg.Bytes())
	if hex.EncodeToString(sum[:]) == "" || c.Manifest.Version != "2.0.0" {
		t.Error("the canonical form is another package")
	}
}

// TestResolve: a URL of the package's host is served from its file, its
// directory's index, or its entry page; a path it does not hold falls
// back, keeping the query; other hosts are not the package's.
func TestResolve(t *testing.T) {
	p := open(t, offlinetest.Pack(t, offlinetest.Site("1.0.0", 1000), offlinetest.Manifest("ak", "home", "1.0.0"), key(t)))
	m := p.Manifest
	for raw, want := range map[string]string{
		"https://home.shop.example/assets/app.js":              "file assets/app.js",
		"https://home.shop.example/assets/app.js?v=3#top":      "file assets/app.js",
		"https://HOME.shop.example:443/img/logo.png":           "file img/logo.png",
		"https://home.shop.example":                            "file index.html",
		"https://home.shop.example/":                           "file index.html",
		"https://home.shop.example/assets/":                    "fallback https://cdn.shop.example/home/assets/",
		"https://home.shop.example/api/cart?id=7":              "fallback https://cdn.shop.example/home/api/cart?id=7",
		"https://home.shop.example/assets/../index.html":       "fallback https://cdn.shop.example/home/assets/../index.html",
		"https://home.shop.example/assets%2Fapp.js":            "fallback https://cdn.shop.example/home/assets%2Fapp.js",
		"https://home.shop.example/Assets/app.js":              "fallback https://cdn.shop.example/home/Assets/app.js",
		"http://home.shop.example/assets/app.js":               "not mine",
		"https://home.shop.example:8443/assets/app.js":         "not mine",
		"https://cart.shop.example/assets/app.js":              "not mine",
		"https://home.shop.example.evil.example/assets/app.js": "not mine",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		file, fallback, mine := m.Resolve(u)
		got := "not mine"
		switch {
		case mine && file != "":
			got = "file " + file
		case mine:
			got = "fallback " + fallback
		}
		if got != want {
			t.Errorf("%s: %s, want %s", raw, got, want)
		}
	}
}
