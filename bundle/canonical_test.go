package bundle_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/signing"
)

// canonicalTree has files Pack deflates and files it stores.
var canonicalTree = map[string][]byte{
	"index.html":     []byte(strings.Repeat("<p>hello</p>\n", 300)),
	"js/app.js":      []byte(strings.Repeat("function(){}\n", 500)),
	"img/logo.png":   randomBytes(3000),
	"empty":          {},
	"ü/文字.json":      []byte(`{"k":"v"}`),
	"zeros/big.bin":  make([]byte, 2<<20), // deflates over 100x: stored
	"lib/native.so":  randomBytes(64 << 10),
	"lib/native.txt": []byte("a small text file"),
}

// openIn is WriteCanonical's open over the directory dir.
func openIn(t *testing.T, dir string) func(string) (io.ReadCloser, error) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return func(p string) (io.ReadCloser, error) { return root.Open(filepath.FromSlash(p)) }
}

// packed is a bundle of canonicalTree, the archive Pack made, and the
// directory it was packed from.
func packed(t *testing.T, alg signing.Alg) (*bundle.Bundle, []byte, string) {
	t.Helper()
	src := t.TempDir()
	bundletest.WriteFiles(t, src, canonicalTree)
	archive := packBytes(t, src, newKey(t, alg))
	b, err := openBytes(archive, bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return b, archive, src
}

func canonicalOf(t *testing.T, b *bundle.Bundle) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := b.WriteCanonical(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteCanonical says %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

// TestWriteCanonical: the canonical form is the same bytes whether made
// from the bundle or from its files on disk (where they were packed from,
// or where the bundle was extracted to), every time.
func TestWriteCanonical(t *testing.T) {
	for _, alg := range signing.Algs {
		t.Run(string(alg), func(t *testing.T) {
			b, archive, src := packed(t, alg)
			canon := canonicalOf(t, b)
			if again := canonicalOf(t, b); !bytes.Equal(canon, again) {
				t.Error("the canonical form of a bundle differs from one writing to the next")
			}
			if bytes.Equal(canon, archive) {
				t.Error("Pack deflated nothing; the test needs deflated files")
			}

			out := t.TempDir()
			if err := b.Extract(out); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{out, src} {
				var buf bytes.Buffer
				n, err := bundle.WriteCanonical(&buf, b.ManifestBytes, b.Signature, b.Files, openIn(t, dir))
				if err != nil {
					t.Fatal(err)
				}
				if n != int64(buf.Len()) {
					t.Errorf("WriteCanonical says %d bytes, wrote %d", n, buf.Len())
				}
				if !bytes.Equal(buf.Bytes(), canon) {
					t.Errorf("the canonical form from the files in %s differs from the bundle's", dir)
				}
			}

			// Packed again elsewhere, deflated or not, the files have the
			// same canonical form, given the same manifest and signature.
			other := t.TempDir()
			bundletest.WriteFiles(t, other, canonicalTree)
			var again bytes.Buffer
			if _, err := bundle.WriteCanonical(&again, b.ManifestBytes, b.Signature, b.Files, openIn(t, other)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), canon) {
				t.Error("the same files in another directory have another canonical form")
			}
		})
	}
}

// TestCanonicalOpens: the canonical form is a bundle Open accepts, of the
// size CanonicalSize says, holding what the bundle held, signed as it
// was; and its own canonical form.
func TestCanonicalOpens(t *testing.T) {
	b, _, _ := packed(t, signing.Ed25519)
	canon := canonicalOf(t, b)
	if size := bundle.CanonicalSize(len(b.ManifestBytes), len(b.Signature), b.Files); size != int64(len(canon)) {
		t.Errorf("CanonicalSize %d, the canonical form is %d bytes", size, len(canon))
	}
	c, err := openBytes(canon, bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.ManifestBytes, b.ManifestBytes) || !bytes.Equal(c.Signature, b.Signature) || !slices.Equal(c.Files, b.Files) {
		t.Error("the canonical form holds another manifest, signature or file list")
	}
	if err := c.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if again := canonicalOf(t, c); !bytes.Equal(again, canon) {
		t.Error("the canonical form of the canonical form differs from it")
	}
	if _, err := openBytes(canon, bundle.Limits{MaxArchive: int64(len(canon))}); err != nil {
		t.Errorf("the canonical form in a MaxArchive of its CanonicalSize: %v", err)
	}

	// A bundle Pack stored whole is its own canonical form.
	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a.bin": randomBytes(1000), "b/c.bin": randomBytes(10)})
	stored := packBytes(t, src, newKey(t, signing.Ed25519))
	s, err := openBytes(stored, bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonicalOf(t, s), stored) {
		t.Error("a bundle of stored entries is not its own canonical form")
	}
}

// TestCanonicalStored: every entry of the canonical form is stored,
// under the fixed header fields Pack writes.
func TestCanonicalStored(t *testing.T) {
	b, _, _ := packed(t, signing.ECDSAP256)
	canon := canonicalOf(t, b)
	zr, err := zip.NewReader(bytes.NewReader(canon), int64(len(canon)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2+len(b.Files) {
		t.Fatalf("%d entries for %d files", len(zr.File), len(b.Files))
	}
	epoch := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, f := range zr.File {
		want := bundle.ManifestName
		switch {
		case i == 1:
			want = bundle.SignatureName
		case i >= 2:
			want = bundle.FilesPrefix + b.Files[i-2].Path
		}
		switch {
		case f.Name != want:
			t.Errorf("entry %d is %s, want %s", i, f.Name, want)
		case f.Method != zip.Store || f.CompressedSize64 != f.UncompressedSize64:
			t.Errorf("entry %s has method %d, %d bytes of %d; want all stored", f.Name, f.Method, f.CompressedSize64, f.UncompressedSize64)
		case f.Flags != 0x800 || f.ReaderVersion != 20 || f.CreatorVersion&0xff != 20:
			t.Errorf("entry %s: flags %#x, versions %d and %d", f.Name, f.Flags, f.ReaderVersion, f.CreatorVersion)
		case f.Mode() != 0o644 || !f.Modified.Equal(epoch) || len(f.Extra) != 0 || f.Comment != "":
			t.Errorf("entry %s: mode %v, time %v, extra %x, comment %q", f.Name, f.Mode(), f.Modified, f.Extra, f.Comment)
		}
	}
}

// TestCanonicalCorrupt: a file that does not match the manifest fails
// with ErrCorrupt, before anything is written.
func TestCanonicalCorrupt(t *testing.T) {
	b, _, _ := packed(t, signing.Ed25519)
	tests := []struct {
		name   string
		change func(name string) error
		want   string
	}{
		{"one byte differs", func(name string) error {
			content, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			content[len(content)/2] ^= 1
			return os.WriteFile(name, content, 0o644)
		}, "file js/app.js does not match its sha256 in the manifest: this copy of the package is damaged"},
		{"longer", func(name string) error {
			f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteString("more")
			return f.Close()
		}, "file js/app.js holds more than the 6500 bytes the manifest declares"},
		{"shorter", func(name string) error { return os.Truncate(name, 100) }, "file js/app.js ends after 100 bytes, but the manifest declares 6500"},
		{"empty", func(name string) error { return os.Truncate(name, 0) }, "file js/app.js ends after 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := b.Extract(dir); err != nil {
				t.Fatal(err)
			}
			if err := tt.change(filepath.Join(dir, "js", "app.js")); err != nil {
				t.Fatal(err)
			}
			var w countingWriter
			n, err := bundle.WriteCanonical(&w, b.ManifestBytes, b.Signature, b.Files, openIn(t, dir))
			wantRefusal(t, err, tt.want, bundle.ErrCorrupt)
			if n != 0 || w.n != 0 {
				t.Errorf("wrote %d bytes (says %d) before refusing", w.n, n)
			}
		})
	}

	t.Run("changed between the readings", func(t *testing.T) {
		dir := t.TempDir()
		if err := b.Extract(dir); err != nil {
			t.Fatal(err)
		}
		open := openIn(t, dir)
		reads := map[string]int{}
		changing := func(p string) (io.ReadCloser, error) {
			if reads[p]++; p == "js/app.js" && reads[p] == 2 {
				return io.NopCloser(strings.NewReader(strings.Repeat("function(){}\r", 500))), nil
			}
			return open(p)
		}
		_, err := bundle.WriteCanonical(io.Discard, b.ManifestBytes, b.Signature, b.Files, changing)
		wantRefusal(t, err, "file js/app.js does not match its sha256", bundle.ErrCorrupt)
	})

	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		if err := b.Extract(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "js", "app.js")); err != nil {
			t.Fatal(err)
		}
		_, err := bundle.WriteCanonical(io.Discard, b.ManifestBytes, b.Signature, b.Files, openIn(t, dir))
		if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, bundle.ErrCorrupt) || mds.ErrorCode(err) == mds.EINVALID {
			t.Errorf("a missing file: %v; want the error of opening it", err)
		}
	})
}

// TestCanonicalRefuses: WriteCanonical writes nothing Open would refuse
// for its manifest, signature or file list, and opens no file to refuse.
func TestCanonicalRefuses(t *testing.T) {
	b, _, _ := packed(t, signing.Ed25519)
	huge := slices.Clone(b.Files)
	huge[0].Size = 1 << 32
	tests := []struct {
		name          string
		manifest, sig []byte
		files         []bundle.File
		want          string
	}{
		{"no files", b.ManifestBytes, b.Signature, nil, "the manifest lists no files"},
		{"an invalid path", b.ManifestBytes, b.Signature, []bundle.File{{Path: "../x", SHA256: strings.Repeat("0", 64)}}, `has a ".." segment`},
		{"no signature", b.ManifestBytes, nil, b.Files, "the signature is empty"},
		{"a signature too large", b.ManifestBytes, make([]byte, bundle.MaxSignature+1), b.Files, "the signature is 1025 bytes; at most 1024"},
		{"a manifest too large", make([]byte, bundle.MaxManifest+1), b.Signature, b.Files, "the manifest is 1048577 bytes; at most 1048576"},
		{"over 4 GiB", b.ManifestBytes, b.Signature, huge, "would need zip64, which a bundle never uses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opened := 0
			open := func(string) (io.ReadCloser, error) { opened++; return io.NopCloser(strings.NewReader("")), nil }
			var w countingWriter
			_, err := bundle.WriteCanonical(&w, tt.manifest, tt.sig, tt.files, open)
			wantRefusal(t, err, tt.want, nil)
			if opened != 0 || w.n != 0 {
				t.Errorf("opened %d files and wrote %d bytes to refuse", opened, w.n)
			}
		})
	}
}

// TestCanonicalHeaderBytes pins the header fields docs/protocol.md gives
// SDK authors to rebuild a canonical form: local header and central
// directory record, byte for byte where they are fixed.
func TestCanonicalHeaderBytes(t *testing.T) {
	files := []bundle.File{{Path: "a.txt", Size: 2, SHA256: "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}}
	var out bytes.Buffer
	if _, err := bundle.WriteCanonical(&out, []byte("{}"), []byte("s"), files, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("hi")), nil
	}); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	le16 := func(at int) uint16 { return binary.LittleEndian.Uint16(b[at:]) }
	le32 := func(at int) uint32 { return binary.LittleEndian.Uint32(b[at:]) }
	// The first local header, of manifest.json.
	if le32(0) != 0x04034b50 || le16(4) != 20 || le16(6) != 0x0800 || le16(8) != 0 || le16(10) != 0 || le16(12) != 0x0021 || le16(28) != 0 {
		t.Errorf("local header % x", b[:30])
	}
	dir := bytes.Index(b, []byte{0x50, 0x4b, 0x01, 0x02})
	if dir < 0 || le16(dir+4) != 0x0314 || le16(dir+6) != 20 || le16(dir+8) != 0x0800 || le16(dir+10) != 0 ||
		le16(dir+12) != 0 || le16(dir+14) != 0x0021 || le16(dir+30) != 0 || le16(dir+32) != 0 || le16(dir+36) != 0 || le32(dir+38) != 0x81A40000 {
		t.Errorf("central directory record % x", b[dir:dir+46])
	}
	if le16(len(b)-2) != 0 {
		t.Error("the archive has a comment")
	}
}
