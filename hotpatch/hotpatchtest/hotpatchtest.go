// Package hotpatchtest crafts hotpatch files for tests: valid ones, and
// ones that break any rule of the format, so that the tests of every
// reader (package hotpatch, the server's upload, the device SDK) refuse
// the same archives. The archives are bundletest's; this package adds
// hotpatch manifests, signed ones with fields hotpatch.Manifest.Encode
// refuses included. Import it from tests only.
package hotpatchtest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/signing"
)

// created is when Manifest says its manifests were made, and when Pack
// packs: 2026-12-04T02:00:00Z.
var created = time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)

// Entry is an archive entry to craft, as bundletest.Entry.
type Entry = bundletest.Entry

// File is the entry of the file at path p of a package: deflated, and
// truthful (bundletest.File).
func File(p string, content []byte) Entry { return bundletest.File(p, content) }

// BuildZip returns a ZIP archive of entries, in their order, whatever
// they are (bundletest.BuildZip).
func BuildZip(tb testing.TB, entries []Entry) []byte {
	tb.Helper()
	return bundletest.BuildZip(tb, entries)
}

// Package returns the archive of manifest.json holding manifestBytes,
// manifest.sig holding key's signature of them, then entries
// (bundletest.Package). key need not be the one the manifest names.
func Package(tb testing.TB, manifestBytes []byte, key *signing.PrivateKey, entries ...Entry) []byte {
	tb.Helper()
	return bundletest.Package(tb, manifestBytes, key, entries...)
}

// Manifest is a manifest of the given fields, signed (as it says) by key,
// created at 2026-12-04T02:00:00Z, without notes, listing files with
// their paths (their names without hotpatch.FilesPrefix), sizes and
// SHA-256 sums. It keeps targets and files in the order given and checks
// nothing, so that tests can change it before EncodeRaw.
func Manifest(key *signing.PrivateKey, appKey string, platform mds.Platform, patchVersion int64, targets []mds.HotpatchTarget, files ...Entry) hotpatch.Manifest {
	return hotpatch.Manifest{
		Format:       hotpatch.Format,
		AppKey:       appKey,
		Platform:     platform,
		Targets:      targets,
		PatchVersion: patchVersion,
		CreatedAt:    created.Format(time.RFC3339),
		KeyID:        key.Public().ID(),
		Alg:          key.Public().Alg(),
		Files:        bundletest.Files(files...),
	}
}

// EncodeRaw is m in the canonical encoding hotpatch.Manifest.Encode
// writes (compact JSON in field order, HTML characters not escaped), but
// without validation: for manifests Encode refuses, such as one with a
// ".." path, to sign with Package.
func EncodeRaw(tb testing.TB, m *hotpatch.Manifest) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Pack returns the hotpatch hotpatch.Pack makes of files (as
// bundletest.WriteFiles takes them, written to a new temporary directory)
// with m's app key, platform, targets, patch version and notes, signed by
// key at 2026-12-04T02:00:00Z: a valid package, the same bytes for the
// same arguments when key is Ed25519.
func Pack(tb testing.TB, files map[string][]byte, m hotpatch.Manifest, key *signing.PrivateKey) []byte {
	tb.Helper()
	src := tb.TempDir()
	bundletest.WriteFiles(tb, src, files)
	var buf bytes.Buffer
	if _, err := hotpatch.Pack(&buf, m, src, key, created); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
