// Package bundletest crafts bundle files for tests: valid ones, and ones
// that break any rule of the format (entries out of order, headers that
// lie about sizes or CRCs, symlinks, manifests listing paths
// bundle.ValidFiles refuses, data descriptors, bytes before or between
// entries), so that the tests of every reader (package bundle, the kinds
// built on it, the server's upload, the device SDK) refuse the same
// archives. Import it from tests only.
package bundletest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/signing"
)

// Entry is an archive entry to craft. Every entry is written with
// zip.Writer.CreateRaw, its CRC-32 and sizes in its local header and no
// data descriptor unless DataDescriptor says otherwise, as
// bundle.Pack writes them, so that an archive of truthful entries
// follows the bundle layout rules.
type Entry struct {
	Name    string
	Content []byte
	Mode    fs.FileMode // 0 for a regular file
	Method  uint16      // zip.Store (the zero value) or zip.Deflate; any other with Raw
	// Raw lets the header lie: Content is deflated here if Method is
	// zip.Deflate and written as is otherwise, under a header that says
	// what the fields below say. Without Raw, the header describes
	// Content truthfully.
	Raw bool
	// DeclaredSize, with Raw, is the uncompressed size the header
	// declares; nil declares len(Content). A header can so lie about its
	// size: new(int64(2)) for three bytes of content.
	DeclaredSize *int64
	BadCRC       bool   // with Raw, the header's CRC-32 is Content's plus one
	Flags        uint16 // the header's general purpose flags: 0x1 claims encryption
	// DataDescriptor writes the entry as zip.Writer.CreateHeader does:
	// general purpose flag 0x8, zeros for the CRC-32 and sizes in the
	// local header, and a data descriptor holding them after the data.
	DataDescriptor bool
	// Before is bytes written right before the entry's local header: on
	// the first entry, a prefix to the archive (which the central
	// directory's offsets count, as a self-extracting archive's do); on
	// another, a gap after the previous entry, which must then not use
	// a data descriptor.
	Before []byte
	// After is bytes written right after the entry's data: a gap before
	// the next entry or, after the last, before the central directory.
	// Not with DataDescriptor.
	After []byte
}

// File is the entry of the file at path p of a bundle (under
// bundle.FilesPrefix): deflated, and truthful.
func File(p string, content []byte) Entry {
	return Entry{Name: bundle.FilesPrefix + p, Content: content, Method: zip.Deflate}
}

// Files is the file list a manifest gives entries: their paths (their
// names without bundle.FilesPrefix), sizes and SHA-256 sums, in the order
// given, unchecked.
func Files(entries ...Entry) []bundle.File {
	var list []bundle.File // nil when there are none, which JSON encodes as null
	for _, e := range entries {
		sum := sha256.Sum256(e.Content)
		list = append(list, bundle.File{Path: strings.TrimPrefix(e.Name, bundle.FilesPrefix), Size: int64(len(e.Content)), SHA256: hex.EncodeToString(sum[:])})
	}
	return list
}

// BuildZip returns a ZIP archive of entries, in their order, whatever
// they are: nothing here checks them against the bundle format.
func BuildZip(tb testing.TB, entries []Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if len(entries) > 0 {
		buf.Write(entries[0].Before)
	}
	zw := zip.NewWriter(&buf)
	zw.SetOffset(int64(buf.Len()))
	var last io.Writer // the previous entry's, for the gap after it
	for i, e := range entries {
		if !e.Raw && (e.DeclaredSize != nil || e.BadCRC || e.Method != zip.Store && e.Method != zip.Deflate) {
			tb.Fatalf("entry %q: DeclaredSize, BadCRC and methods other than store and deflate need Raw", e.Name)
		}
		if i > 0 && len(e.Before) > 0 {
			if entries[i-1].DataDescriptor {
				tb.Fatalf("entry %q: Before after an entry with a data descriptor", e.Name)
			}
			if _, err := last.Write(e.Before); err != nil {
				tb.Fatalf("entry %q: Before: %v", e.Name, err)
			}
		}
		fh := &zip.FileHeader{Name: e.Name, Method: e.Method, Flags: e.Flags, ReaderVersion: 20}
		if e.Mode != 0 {
			fh.SetMode(e.Mode)
		}
		fh.CreatorVersion |= 20
		if !isASCII(e.Name) && utf8.ValidString(e.Name) {
			fh.Flags |= 0x800 // what CreateHeader sets for such names
		}
		if e.DataDescriptor {
			fh.Flags |= 0x8
		}
		data := e.Content
		if e.Method == zip.Deflate {
			var c bytes.Buffer
			fw, _ := flate.NewWriter(&c, flate.DefaultCompression) // the level is valid
			fw.Write(e.Content)
			fw.Close()
			data = c.Bytes()
		}
		fh.CRC32 = crc32.ChecksumIEEE(e.Content)
		if e.BadCRC {
			fh.CRC32++
		}
		fh.CompressedSize64 = uint64(len(data))
		fh.UncompressedSize64 = uint64(len(e.Content))
		if e.DeclaredSize != nil {
			fh.UncompressedSize64 = uint64(*e.DeclaredSize)
		}
		w, err := zw.CreateRaw(fh)
		if err == nil {
			_, err = w.Write(data)
		}
		if err == nil && len(e.After) > 0 {
			if e.DataDescriptor {
				tb.Fatalf("entry %q: After with a data descriptor", e.Name)
			}
			_, err = w.Write(e.After)
		}
		if err != nil {
			tb.Fatalf("entry %q: %v", e.Name, err)
		}
		last = w
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Package returns the archive of manifest.json holding manifestBytes,
// manifest.sig holding key's signature of them (both stored), then
// entries. key need not be the one the manifest names.
func Package(tb testing.TB, manifestBytes []byte, key *signing.PrivateKey, entries ...Entry) []byte {
	tb.Helper()
	sig, err := key.Sign(manifestBytes)
	if err != nil {
		tb.Fatal(err)
	}
	head := []Entry{
		{Name: bundle.ManifestName, Content: manifestBytes, Method: zip.Store},
		{Name: bundle.SignatureName, Content: sig, Method: zip.Store},
	}
	return BuildZip(tb, append(head, entries...))
}

// WriteFiles writes files, keyed by slash-separated paths relative to
// dir, under dir, making the directories they need.
func WriteFiles(tb testing.TB, dir string, files map[string][]byte) {
	tb.Helper()
	for p, b := range files {
		name := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(name, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
