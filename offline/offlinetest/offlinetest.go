// Package offlinetest makes offline packages for tests: a small web site
// whose versions differ as real front-end builds do (a version stamped
// into every script, a few changed lines), and its packed, signed
// package. Import it from tests only.
package offlinetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
)

// Packed is when Pack signs packages: fixed, so that packing the same
// files gives the same bytes.
var Packed = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// Manifest returns the manifest Pack completes for version v of package
// pkg of the app of appKey: a normal package served at
// https://<pkg>.shop.example from /index.html, falling back to
// https://cdn.shop.example/<pkg>/.
func Manifest(appKey, pkg, v string) offline.Manifest {
	return offline.Manifest{AppKey: appKey, Package: pkg, Version: v, Type: mds.OfflineNormal,
		Host: "https://" + pkg + ".shop.example", Entry: "/index.html", Fallback: "https://cdn.shop.example/" + pkg + "/",
		Network: mds.NetworkAny, Notes: "Version " + v + "."}
}

// Site returns the files of version v of a small web site: an entry
// page, a script of about size bytes with v stamped into it every few
// hundred bytes and a line that changes with v, a stylesheet, and an
// image that never changes. Versions share most of their bytes.
func Site(v string, size int) map[string][]byte {
	var js strings.Builder
	r := rand.New(rand.NewPCG(1, 2)) // the same "code" in every version
	words := []string{"const", "function", "return", "this.state", "props", "render", "useEffect", "await", "fetch(", "=>", "{", "}", ";"}
	for line := 0; js.Len() < size; line++ {
		if line%20 == 0 {
			fmt.Fprintf(&js, "/*! shop v%s */\n", v)
		}
		for range 12 {
			js.WriteString(words[r.IntN(len(words))])
			js.WriteByte(' ')
		}
		fmt.Fprintf(&js, "%d;\n", r.IntN(1000))
	}
	fmt.Fprintf(&js, "export const build = %q;\n", v)
	logo := make([]byte, 4096)
	rand.NewChaCha8([32]byte{3, 4}).Read(logo)
	return map[string][]byte{
		"index.html":       fmt.Appendf(nil, "<!doctype html><title>Shop %s</title><script src=\"/assets/app.js\"></script>\n", v),
		"assets/app.js":    []byte(js.String()),
		"assets/style.css": []byte("body{margin:0;font:16px system-ui}\n.cart{display:flex}\n"),
		"img/logo.png":     logo,
	}
}

// Pack packs files into a package of manifest m (completed by
// offline.Pack) signed by key, at Packed.
func Pack(tb testing.TB, files map[string][]byte, m offline.Manifest, key *signing.PrivateKey) []byte {
	tb.Helper()
	dir := tb.TempDir()
	bundletest.WriteFiles(tb, dir, files)
	var buf bytes.Buffer
	if _, err := offline.Pack(&buf, m, dir, key, Packed); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
