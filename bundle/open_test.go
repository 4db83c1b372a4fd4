package bundle_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/signing"
)

func TestOpenRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	a, b := bundletest.File("a", []byte("alpha")), bundletest.File("b", []byte("bravo"))
	valid := func(entries ...bundletest.Entry) []byte { return craft(t, key, entries...) }
	// withManifest builds a bundle whose manifest lists files, changed by
	// change, and whose file entries are entries.
	withManifest := func(files []bundletest.Entry, change func([]bundle.File), entries ...bundletest.Entry) []byte {
		list := bundletest.Files(files...)
		change(list)
		return bundletest.Package(t, encodeManifest(list), key, entries...)
	}
	withPath := func(p string) []byte { return valid(bundletest.File(p, []byte("x"))) }
	manifestOf := func(entries ...bundletest.Entry) []byte { return encodeManifest(bundletest.Files(entries...)) }
	tests := []struct {
		name     string
		archive  []byte
		lim      bundle.Limits
		want     string
		sentinel error
	}{
		{"not a zip", []byte("PK this is not a zip file at all"), bundle.Limits{}, "not a zip archive", nil},
		{"empty", nil, bundle.Limits{}, "not a zip archive", nil},
		{"no entries", bundletest.BuildZip(t, nil), bundle.Limits{}, "first entry of the archive is none; a test bundle starts with manifest.json", nil},
		{"missing manifest.sig", bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.ManifestName, Content: manifestOf(a), Method: zip.Store}, a}),
			bundle.Limits{}, `second entry of the archive is "files/a"`, nil},
		{"manifest not first", func() []byte {
			mb := manifestOf(a)
			sig, _ := key.Sign(mb)
			return bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.SignatureName, Content: sig}, {Name: bundle.ManifestName, Content: mb}, a})
		}(), bundle.Limits{}, `first entry of the archive is "manifest.sig"`, nil},
		{"extra entry", bundletest.Package(t, manifestOf(a), key, a, bundletest.Entry{Name: "extra.txt", Content: []byte("x")}),
			bundle.Limits{}, `entry "extra.txt" is not listed in the manifest; a test bundle holds only`, nil},
		{"extra file entry", bundletest.Package(t, manifestOf(a), key, a, b), bundle.Limits{}, `entry "files/b" is not listed in the manifest`, nil},
		{"missing file entry", bundletest.Package(t, manifestOf(a, b), key, a), bundle.Limits{}, "the archive lacks files/b, which the manifest lists", nil},
		{"file entries out of order", bundletest.Package(t, manifestOf(a, b), key, b, a), bundle.Limits{}, "entry 3 of the archive is files/b where the manifest lists files/a", nil},
		{"duplicate entry names", bundletest.Package(t, manifestOf(a), key, a, a), bundle.Limits{}, `entry "files/a" appears twice`, nil},
		{"duplicate manifest.json", bundletest.Package(t, manifestOf(a), key, a, bundletest.Entry{Name: bundle.ManifestName, Content: manifestOf(a)}),
			bundle.Limits{}, `entry "manifest.json" appears twice`, nil},
		{"symlink entry", valid(bundletest.Entry{Name: "files/a", Content: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}),
			bundle.Limits{}, `entry "files/a" is a symlink; a test bundle holds regular files only`, nil},
		{"directory entry", bundletest.Package(t, manifestOf(a), key, bundletest.Entry{Name: "files/d/", Mode: fs.ModeDir | 0o755}, a),
			bundle.Limits{}, `entry "files/d/" is a directory`, nil},
		{"device entry", valid(bundletest.Entry{Name: "files/a", Mode: fs.ModeDevice | 0o644}), bundle.Limits{}, `entry "files/a" is a device`, nil},
		{"encrypted entry", valid(bundletest.Entry{Name: "files/a", Content: []byte("x"), Raw: true, Method: zip.Store, Flags: 0x1}),
			bundle.Limits{}, `entry "files/a" is encrypted; a test bundle is signed, not encrypted`, nil},
		{"other method", valid(bundletest.Entry{Name: "files/a", Content: []byte("x"), Raw: true, Method: 12}), bundle.Limits{}, "compression method 12; a test bundle uses store", nil},
		{"stored sizes differ", valid(bundletest.Entry{Name: "files/a", Content: []byte("xyz"), Raw: true, Method: zip.Store, DeclaredSize: new(int64(2))}),
			bundle.Limits{}, "is stored, but its compressed size 3 is not its size 2", nil},
		// The test kind's parser does not check paths: Open does.
		{"absolute path", withPath("/etc/passwd"), bundle.Limits{}, "is absolute", nil},
		{"dot-dot path", withPath("lib/../../evil"), bundle.Limits{}, `has a ".." segment`, nil},
		{"backslash path", withPath(`lib\..\evil`), bundle.Limits{}, "has a backslash", nil},
		{"drive letter path", withPath("C:/evil"), bundle.Limits{}, "starts with a drive letter", nil},
		{"case-folding duplicates", valid(bundletest.File("Lib/a.so", []byte("1")), bundletest.File("lib/a.so", []byte("2"))),
			bundle.Limits{}, `files "Lib/a.so" and "lib/a.so" differ only in case`, nil},
		{"file is also a directory", valid(bundletest.File("a", []byte("1")), bundletest.File("a/b", []byte("2"))),
			bundle.Limits{}, `file "a" is also a directory holding "a/b"`, nil},
		{"no files", bundletest.Package(t, encodeManifest(nil), key), bundle.Limits{}, "the manifest lists no files", nil},
		{"too many files", valid(a, b, bundletest.File("c", nil)), bundle.Limits{MaxFiles: 2}, "the archive has 5 entries; at most 2 files", nil},
		{"file too large", valid(a, b), bundle.Limits{MaxFileSize: 4}, `entry "files/a" is 5 bytes uncompressed; at most 4`, nil},
		{"total too large", valid(a, b), bundle.Limits{MaxTotalSize: 9}, "more than 9 bytes", nil},
		{"total over the default", func() []byte {
			// Three files of 180 MiB by their headers, 2 MiB deflated each
			// (less than 100 times: no bomb), 540 MiB in all.
			var big []bundletest.Entry
			for _, name := range []string{"files/x", "files/y", "files/z"} {
				big = append(big, bundletest.Entry{Name: name, Content: randomBytes(2 << 20), Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(180 << 20))})
			}
			return valid(big...)
		}(), bundle.Limits{}, "more than 536870912 bytes", nil},
		{"header size differs from the manifest", withManifest([]bundletest.Entry{a}, func(l []bundle.File) { l[0].Size = 4 }, a),
			bundle.Limits{}, "file a is 5 bytes in the archive but the manifest declares 4", bundle.ErrCorrupt},
		{"manifest.sig too large", bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.ManifestName, Content: manifestOf(a)}, {Name: bundle.SignatureName, Content: make([]byte, 2048)}, a}),
			bundle.Limits{}, "manifest.sig is 2048 bytes; at most 1024", nil},
		{"manifest.sig empty", bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.ManifestName, Content: manifestOf(a)}, {Name: bundle.SignatureName}, a}),
			bundle.Limits{}, "manifest.sig is empty", nil},
		{"manifest CRC wrong", bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.ManifestName, Content: manifestOf(a), Raw: true, BadCRC: true}, {Name: bundle.SignatureName, Content: []byte("s")}, a}),
			bundle.Limits{}, "manifest.json does not match the CRC-32", bundle.ErrCorrupt},
		{"manifest longer than its header says", func() []byte {
			mb := manifestOf(a)
			return bundletest.BuildZip(t, []bundletest.Entry{{Name: bundle.ManifestName, Content: mb, Raw: true, Method: zip.Deflate, DeclaredSize: new(int64(len(mb) - 1))}, {Name: bundle.SignatureName, Content: []byte("s")}, a})
		}(), bundle.Limits{}, "manifest.json holds more than", bundle.ErrCorrupt},
		{"manifest.json over MaxManifest", bundletest.Package(t, append(manifestOf(a), bytes.Repeat([]byte(" "), bundle.MaxManifest)...), key, a),
			bundle.Limits{}, fmt.Sprintf("manifest.json is %d bytes; at most %d", len(manifestOf(a))+bundle.MaxManifest, bundle.MaxManifest), nil},
		{"the kind's parser refuses", func() []byte {
			mb := bytes.Replace(manifestOf(a), []byte(`{"files"`), []byte(`{"run":"rm -rf /","files"`), 1)
			return bundletest.Package(t, mb, key, a)
		}(), bundle.Limits{}, `not a test manifest: json: unknown field "run"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := openBytes(tt.archive, tt.lim)
			if b != nil {
				t.Error("Open returned a bundle with its error")
			}
			wantRefusal(t, err, tt.want, tt.sentinel)
		})
	}
}

// TestOpenAcceptsCrafted makes sure the crafting helpers build bundles
// Open accepts, so that the refusals above are the changes' doing.
func TestOpenAcceptsCrafted(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := bundletest.File("a", []byte("alpha"))
	stored := bundletest.Entry{Name: "files/lib/b", Content: []byte("bravo"), Method: zip.Store, Raw: true}
	b, err := openBytes(craft(t, key, a, stored), bundle.Limits{MaxFiles: 2, MaxFileSize: 5, MaxTotalSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	if err := b.Verify(pub, pub.ID(), pub.Alg()); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if want := bundletest.Files(a, stored); len(b.Files) != 2 || b.Files[0] != want[0] || b.Files[1] != want[1] {
		t.Errorf("files %+v, want %+v", b.Files, want)
	}

	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a": []byte("alpha")})
	packed, err := openBytes(packBytes(t, src, key), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := packed.Verify(pub, pub.ID(), pub.Alg()); err != nil {
		t.Fatal(err)
	}
	if err := packed.CheckFiles(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenOutsideArchive: an end record whose directory offset is too
// large made archive/zip place the first entry before the start of the
// file, and bytes.Reader's error for that is not an EOF (found by
// FuzzOpen); one whose offset is too small makes archive/zip guess a
// prefix. Either way the archive is what is wrong, and the end record
// says so before any entry is read.
func TestOpenOutsideArchive(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := bundletest.File("a", []byte("alpha"))
	for _, tt := range []struct {
		shift int64
		want  string
	}{
		{1000, "runs past its end record"},
		{-1, "unexpected 1 bytes between the central directory and its end record"},
	} {
		archive := craft(t, key, a)
		end := archive[len(archive)-22:] // no comment: the end record is last
		if binary.LittleEndian.Uint32(end) != 0x06054b50 {
			t.Fatal("no end record")
		}
		binary.LittleEndian.PutUint32(end[16:], uint32(int64(binary.LittleEndian.Uint32(end[16:]))+tt.shift))
		_, err := openBytes(archive, bundle.DefaultLimits)
		wantRefusal(t, err, tt.want, nil)
	}
}

// TestOpenOverlap: two directory entries sharing one entry's bytes (how
// the overlapping zip bombs work) are refused, even when the bytes would
// pass for both files.
func TestOpenOverlap(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	archive := craft(t, key, bundletest.File("a", []byte("same")), bundletest.File("b", []byte("same")))
	// Point the central directory record of files/b (signature, then the
	// local header offset at byte 42, the name at 46) at files/a's header.
	record := []byte("PK\x01\x02")
	var offsetOfA uint32
	patched := false
	for i := bytes.Index(archive, record); i >= 0 && i+53 <= len(archive) && !patched; {
		switch string(archive[i+46 : i+53]) {
		case "files/a":
			offsetOfA = binary.LittleEndian.Uint32(archive[i+42:])
		case "files/b":
			binary.LittleEndian.PutUint32(archive[i+42:], offsetOfA)
			patched = true
		}
		next := bytes.Index(archive[i+1:], record)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	if !patched {
		t.Fatal("no central directory record of files/b")
	}
	_, err := openBytes(archive, bundle.DefaultLimits)
	wantRefusal(t, err, `entry "files/b" overlaps another`, nil)
}

func TestVerify(t *testing.T) {
	key, other := newKey(t, signing.ECDSAP256), newKey(t, signing.Ed25519)
	a := bundletest.File("a", []byte("alpha"))
	pub := key.Public()

	b, err := openBytes(craft(t, key, a), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(pub, pub.ID(), pub.Alg()); err != nil {
		t.Fatal(err)
	}
	// The manifest names key; other is given.
	err = b.Verify(other.Public(), pub.ID(), pub.Alg())
	wantRefusal(t, err, "the package is signed by key "+pub.ID()+" (ecdsa-p256), not by this key "+other.Public().ID(), bundle.ErrWrongKey)
	if errors.Is(err, bundle.ErrBadSignature) {
		t.Error("a wrong key is reported as a bad signature")
	}

	// The manifest names key, but another key of the same kind signed it.
	impostor := newKey(t, signing.ECDSAP256)
	forged, err := openBytes(bundletest.Package(t, encodeManifest(bundletest.Files(a)), impostor, a), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	err = forged.Verify(pub, pub.ID(), pub.Alg())
	wantRefusal(t, err, "signature does not match the manifest: the package was altered or signed by another key", bundle.ErrBadSignature)
	if !errors.Is(err, signing.ErrBadSignature) || errors.Is(err, bundle.ErrWrongKey) {
		t.Errorf("%v: does not match signing.ErrBadSignature, or matches ErrWrongKey", err)
	}

	// Same key ID, other algorithm: refused before the signature is read.
	wantRefusal(t, b.Verify(pub, pub.ID(), signing.Ed25519), "(ed25519), not by this key", bundle.ErrWrongKey)
}

func TestCorruptFiles(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	content := []byte("hello world!")
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	tests := []struct {
		name string
		file bundletest.Entry // the entry of lib/x, whose manifest entry is
		size int64            // this size
		sha  string
		want string
	}{
		{"one byte differs", bundletest.File("lib/x", []byte("hello world?")), 12, sum(content), "file lib/x does not match its sha256 in the manifest"},
		{"one byte differs, stored", bundletest.Entry{Name: "files/lib/x", Content: []byte("hello world?"), Method: zip.Store}, 12, sum(content), "file lib/x does not match its sha256"},
		{"longer than the header says", bundletest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(11))}, 11, sum(content[:11]), "file lib/x holds more than the 11 bytes the manifest declares"},
		{"shorter than the header says", bundletest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(13))}, 13, sum(append(content, '!')), "file lib/x ends after 12 bytes, but the manifest declares 13"},
		{"CRC wrong", bundletest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, BadCRC: true}, 12, sum(content), "file lib/x does not match the CRC-32"},
		{"deflate stream broken", bundletest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true}, 12, sum(content), "file lib/x does not decompress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := bundletest.File("a", []byte("alpha"))
			files := bundletest.Files(a, tt.file)
			files[1].Size, files[1].SHA256 = tt.size, tt.sha
			archive := bundletest.Package(t, encodeManifest(files), key, a, tt.file)
			if tt.name == "deflate stream broken" {
				// A reserved block type (0b11) in the first byte of
				// the deflate data breaks the stream.
				zr, _ := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
				off, err := zr.File[3].DataOffset()
				if err != nil {
					t.Fatal(err)
				}
				archive[off] = 0x07 // final block, type 11: invalid
			}
			b, err := openBytes(archive, bundle.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			pub := key.Public()
			if err := b.Verify(pub, pub.ID(), pub.Alg()); err != nil {
				t.Fatal(err)
			}
			wantRefusal(t, b.CheckFiles(), tt.want, bundle.ErrCorrupt)
			out := t.TempDir()
			wantRefusal(t, b.Extract(out), tt.want, bundle.ErrCorrupt)
			// a came first and was written whole; lib/x is not to be
			// trusted, and the caller removes out.
			if got, err := os.ReadFile(filepath.Join(out, "a")); err != nil || string(got) != "alpha" {
				t.Errorf("a: %q, %v", got, err)
			}
			_, err = b.WriteCanonical(io.Discard)
			wantRefusal(t, err, tt.want, bundle.ErrCorrupt)
		})
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.n.Add(int64(n))
	return n, err
}

func TestZipBomb(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	archive := craft(t, key, bundletest.File("zeros", make([]byte, 50<<20)))
	if len(archive) > 1<<20 {
		t.Fatalf("the bomb is %d bytes; it should deflate to far less", len(archive))
	}
	r := &countingReaderAt{r: bytes.NewReader(archive)}
	_, err := bundle.Open(r, int64(len(archive)), testKind, bundle.DefaultLimits, parseManifest)
	wantRefusal(t, err, `entry "files/zeros" inflates from`, nil)
	wantRefusal(t, err, "refused as a zip bomb", nil)
	if n := r.n.Load(); n > int64(len(archive))/10 {
		t.Errorf("Open read %d bytes of a %d-byte bomb", n, len(archive))
	}

	// The ratio is what refused it: with room for it, it opens and checks.
	b, err := openBytes(archive, bundle.Limits{MaxRatio: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckFiles(); err != nil {
		t.Fatal(err)
	}

	// Under 1 MiB any ratio goes.
	if _, err := openBytes(craft(t, key, bundletest.File("zeros", make([]byte, 1<<20))), bundle.DefaultLimits); err != nil {
		t.Errorf("1 MiB of zeros: %v", err)
	}
}

func TestExtractRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a/b/c": []byte("c")})
	b, err := openBytes(packBytes(t, src, key), bundle.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	notEmpty := t.TempDir()
	bundletest.WriteFiles(t, notEmpty, map[string][]byte{"keep": []byte("x")})
	wantRefusal(t, b.Extract(notEmpty), "it is not empty", nil)
	if _, err := os.Stat(filepath.Join(notEmpty, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Extract wrote into a directory it refused: %v", err)
	}
	wantRefusal(t, b.Extract(filepath.Join(src, "missing")), "it is not a directory", nil)
	wantRefusal(t, b.Extract(filepath.Join(src, "a", "b", "c")), "it is not a directory", nil)

	out := t.TempDir()
	if err := b.Extract(out); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"a": fs.ModeDir, "a/b": fs.ModeDir, "a/b/c": 0} {
		fi, err := os.Lstat(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil || fi.Mode().Type() != mode {
			t.Errorf("%s: %v, %v", name, fi, err)
		}
	}
	// Extracting again into the same, now full, directory is refused.
	wantRefusal(t, b.Extract(out), "it is not empty", nil)
}

func FuzzOpen(f *testing.F) {
	key := newKey(f, signing.Ed25519)
	src := f.TempDir()
	bundletest.WriteFiles(f, src, map[string][]byte{"a.txt": []byte(strings.Repeat("patch ", 40)), "lib/b.so": {1, 2, 3}})
	f.Add(packBytes(f, src, key))
	a := bundletest.File("a", []byte("alpha"))
	f.Add(craft(f, key, a))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	// Layouts Open refuses: a data descriptor, a gap.
	dd, gap := a, a
	dd.DataDescriptor, gap.Before = true, []byte("gap")
	f.Add(craft(f, key, dd))
	f.Add(craft(f, key, gap))
	lim := bundle.Limits{MaxFiles: 100, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, archive []byte) {
		b, err := openBytes(archive, lim)
		if err != nil {
			if code := mds.ErrorCode(err); code != mds.EINVALID {
				t.Fatalf("code %q for malformed input: %v", code, err)
			}
			return
		}
		if err := bundle.ValidFiles(b.Files); err != nil {
			t.Fatalf("accepted an invalid file list: %v", err)
		}
		if bundle.Entries(b) != len(b.Files) {
			t.Fatalf("%d file entries for %d files", bundle.Entries(b), len(b.Files))
		}
		if err := b.CheckFiles(); err != nil {
			if mds.ErrorCode(err) != mds.EINVALID {
				t.Fatalf("CheckFiles: %v", err)
			}
			return
		}
		// What checks out has a canonical form, which opens too.
		var canon bytes.Buffer
		n, err := b.WriteCanonical(&canon)
		if err != nil {
			t.Fatalf("WriteCanonical: %v", err)
		}
		if n != int64(canon.Len()) || n != bundle.CanonicalSize(len(b.ManifestBytes), len(b.Signature), b.Files) {
			t.Fatalf("WriteCanonical wrote %d bytes, says %d, CanonicalSize %d", canon.Len(), n, bundle.CanonicalSize(len(b.ManifestBytes), len(b.Signature), b.Files))
		}
		if _, err := openBytes(canon.Bytes(), bundle.Limits{MaxFiles: lim.MaxFiles, MaxFileSize: lim.MaxFileSize, MaxTotalSize: lim.MaxTotalSize, MaxRatio: 1}); err != nil {
			t.Fatalf("the canonical form does not open: %v", err)
		}
	})
}
