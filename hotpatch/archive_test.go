package hotpatch_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/hotpatch/hotpatchtest"
	"github.com/mds-dev/mds/signing"
)

func TestOpenRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	a, b := hotpatchtest.File("a", []byte("alpha")), hotpatchtest.File("b", []byte("bravo"))
	valid := func(entries ...hotpatchtest.Entry) []byte {
		m := craftManifest(key, entries...)
		return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, entries...)
	}
	// withManifest builds a package whose manifest is craftManifest's for
	// files, changed by change, and whose file entries are entries.
	withManifest := func(files []hotpatchtest.Entry, change func(*hotpatch.Manifest), entries ...hotpatchtest.Entry) []byte {
		m := craftManifest(key, files...)
		change(&m)
		return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, entries...)
	}
	withPath := func(p string) []byte {
		e := hotpatchtest.File(p, []byte("x"))
		return withManifest([]hotpatchtest.Entry{e}, func(*hotpatch.Manifest) {}, e)
	}
	tests := []struct {
		name     string
		archive  []byte
		lim      hotpatch.Limits
		want     string
		sentinel error
	}{
		{"not a zip", []byte("PK this is not a zip file at all"), hotpatch.Limits{}, "not a zip archive", nil},
		{"empty", nil, hotpatch.Limits{}, "not a zip archive", nil},
		{"no entries", hotpatchtest.BuildZip(t, nil), hotpatch.Limits{}, "first entry of the archive is none", nil},
		{"missing manifest.sig", func() []byte {
			m := craftManifest(key, a)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.ManifestName, Content: hotpatchtest.EncodeRaw(t, &m), Method: zip.Store}, a})
		}(), hotpatch.Limits{}, `second entry of the archive is "files/a"`, nil},
		{"manifest not first", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			sig, _ := key.Sign(mb)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.SignatureName, Content: sig}, {Name: hotpatch.ManifestName, Content: mb}, a})
		}(), hotpatch.Limits{}, `first entry of the archive is "manifest.sig"`, nil},
		{"extra entry", func() []byte {
			m := craftManifest(key, a)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, hotpatchtest.Entry{Name: "extra.txt", Content: []byte("x")})
		}(), hotpatch.Limits{}, `entry "extra.txt" is not listed in the manifest`, nil},
		{"extra file entry", func() []byte {
			m := craftManifest(key, a)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, b)
		}(), hotpatch.Limits{}, `entry "files/b" is not listed in the manifest`, nil},
		{"missing file entry", func() []byte {
			m := craftManifest(key, a, b)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a)
		}(), hotpatch.Limits{}, "the archive lacks files/b, which the manifest lists", nil},
		{"file entries out of order", func() []byte {
			m := craftManifest(key, a, b)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, b, a)
		}(), hotpatch.Limits{}, "entry 3 of the archive is files/b where the manifest lists files/a", nil},
		{"duplicate entry names", func() []byte {
			m := craftManifest(key, a)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, a)
		}(), hotpatch.Limits{}, `entry "files/a" appears twice`, nil},
		{"duplicate manifest.json", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			return hotpatchtest.Package(t, mb, key, a, hotpatchtest.Entry{Name: hotpatch.ManifestName, Content: mb})
		}(), hotpatch.Limits{}, `entry "manifest.json" appears twice`, nil},
		{"symlink entry", func() []byte {
			link := hotpatchtest.Entry{Name: "files/a", Content: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}
			return valid(link)
		}(), hotpatch.Limits{}, `entry "files/a" is a symlink`, nil},
		{"directory entry", func() []byte {
			m := craftManifest(key, a)
			return hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, hotpatchtest.Entry{Name: "files/d/", Mode: fs.ModeDir | 0o755}, a)
		}(), hotpatch.Limits{}, `entry "files/d/" is a directory`, nil},
		{"device entry", valid(hotpatchtest.Entry{Name: "files/a", Mode: fs.ModeDevice | 0o644}), hotpatch.Limits{}, `entry "files/a" is a device`, nil},
		{"encrypted entry", valid(hotpatchtest.Entry{Name: "files/a", Content: []byte("x"), Raw: true, Method: zip.Store, Flags: 0x1}), hotpatch.Limits{}, `entry "files/a" is encrypted`, nil},
		{"other method", valid(hotpatchtest.Entry{Name: "files/a", Content: []byte("x"), Raw: true, Method: 12}), hotpatch.Limits{}, "compression method 12", nil},
		{"stored sizes differ", valid(hotpatchtest.Entry{Name: "files/a", Content: []byte("xyz"), Raw: true, Method: zip.Store, DeclaredSize: new(int64(2))}), hotpatch.Limits{}, "is stored, but its compressed size 3 is not its size 2", nil},
		{"absolute path", withPath("/etc/passwd"), hotpatch.Limits{}, "is absolute", nil},
		{"dot-dot path", withPath("lib/../../evil"), hotpatch.Limits{}, `has a ".." segment`, nil},
		{"backslash path", withPath(`lib\..\evil`), hotpatch.Limits{}, "has a backslash", nil},
		{"drive letter path", withPath("C:/evil"), hotpatch.Limits{}, "starts with a drive letter", nil},
		{"case-folding duplicates", func() []byte {
			x, y := hotpatchtest.File("Lib/a.so", []byte("1")), hotpatchtest.File("lib/a.so", []byte("2"))
			return withManifest([]hotpatchtest.Entry{x, y}, func(*hotpatch.Manifest) {}, x, y)
		}(), hotpatch.Limits{}, `files "Lib/a.so" and "lib/a.so" differ only in case`, nil},
		{"file is also a directory", func() []byte {
			x, y := hotpatchtest.File("a", []byte("1")), hotpatchtest.File("a/b", []byte("2"))
			return withManifest([]hotpatchtest.Entry{x, y}, func(*hotpatch.Manifest) {}, x, y)
		}(), hotpatch.Limits{}, `file "a" is also a directory holding "a/b"`, nil},
		{"no platform", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.Platform = "" }, a), hotpatch.Limits{}, `platform "" is not one of`, nil},
		{"no app key", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.AppKey = "" }, a), hotpatch.Limits{}, "no app_key", nil},
		{"too many files", valid(a, b, hotpatchtest.File("c", nil)), hotpatch.Limits{MaxFiles: 2}, "the archive has 5 entries; at most 2 files", nil},
		{"file too large", valid(a, b), hotpatch.Limits{MaxFileSize: 4}, `entry "files/a" is 5 bytes uncompressed; at most 4`, nil},
		{"total too large", valid(a, b), hotpatch.Limits{MaxTotalSize: 9}, "more than 9 bytes", nil},
		{"total over the default", func() []byte {
			// Three files of 180 MiB by their headers, 2 MiB deflated each
			// (less than 100 times: no bomb), 540 MiB in all.
			var big []hotpatchtest.Entry
			for _, name := range []string{"files/x", "files/y", "files/z"} {
				big = append(big, hotpatchtest.Entry{Name: name, Content: randomBytes(2 << 20), Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(180 << 20))})
			}
			return valid(big...)
		}(), hotpatch.Limits{}, "more than 536870912 bytes", nil},
		{"header size differs from the manifest", withManifest([]hotpatchtest.Entry{a}, func(m *hotpatch.Manifest) { m.Files[0].Size = 4 }, a), hotpatch.Limits{}, "file a is 5 bytes in the archive but the manifest declares 4", hotpatch.ErrCorrupt},
		{"manifest.sig too large", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.ManifestName, Content: mb}, {Name: hotpatch.SignatureName, Content: make([]byte, 2048)}, a})
		}(), hotpatch.Limits{}, "manifest.sig is 2048 bytes; at most 1024", nil},
		{"manifest.sig empty", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.ManifestName, Content: mb}, {Name: hotpatch.SignatureName}, a})
		}(), hotpatch.Limits{}, "manifest.sig is empty", nil},
		{"manifest CRC wrong", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.ManifestName, Content: mb, Raw: true, BadCRC: true}, {Name: hotpatch.SignatureName, Content: []byte("s")}, a})
		}(), hotpatch.Limits{}, "manifest.json does not match the CRC-32", hotpatch.ErrCorrupt},
		{"manifest longer than its header says", func() []byte {
			m := craftManifest(key, a)
			mb := hotpatchtest.EncodeRaw(t, &m)
			return hotpatchtest.BuildZip(t, []hotpatchtest.Entry{{Name: hotpatch.ManifestName, Content: mb, Raw: true, Method: zip.Deflate, DeclaredSize: new(int64(len(mb) - 1))}, {Name: hotpatch.SignatureName, Content: []byte("s")}, a})
		}(), hotpatch.Limits{}, "manifest.json holds more than", hotpatch.ErrCorrupt},
		{"non-canonical manifest", func() []byte {
			m := craftManifest(key, a)
			mb := bytes.Replace(hotpatchtest.EncodeRaw(t, &m), []byte(`,"app_key"`), []byte(`, "app_key"`), 1)
			return hotpatchtest.Package(t, mb, key, a)
		}(), hotpatch.Limits{}, "manifest is not in canonical form", nil},
		{"unknown manifest field", func() []byte {
			m := craftManifest(key, a)
			mb := bytes.Replace(hotpatchtest.EncodeRaw(t, &m), []byte(`{"format"`), []byte(`{"run":"rm -rf /","format"`), 1)
			return hotpatchtest.Package(t, mb, key, a)
		}(), hotpatch.Limits{}, `unknown field "run"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := openBytes(tt.archive, tt.lim)
			if p != nil {
				t.Error("Open returned a package with its error")
			}
			wantRefusal(t, err, tt.want, tt.sentinel)
		})
	}
}

// TestOpenAcceptsCrafted makes sure the crafting helpers build packages
// Open accepts, so that the refusals above are the changes' doing.
func TestOpenAcceptsCrafted(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	stored := hotpatchtest.Entry{Name: "files/lib/b", Content: []byte("bravo"), Method: zip.Store, Raw: true}
	m := craftManifest(key, a, stored)
	b := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, stored)
	p, err := openBytes(b, hotpatch.Limits{MaxFiles: 2, MaxFileSize: 5, MaxTotalSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckFiles(); err != nil {
		t.Fatal(err)
	}

	packed, err := openBytes(hotpatchtest.Pack(t, map[string][]byte{"a": []byte("alpha")}, baseManifest(), key), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := packed.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	if err := packed.CheckFiles(); err != nil {
		t.Fatal(err)
	}
	if packed.Manifest.CreatedAt != m.CreatedAt {
		t.Errorf("hotpatchtest.Pack packed at %s, hotpatchtest.Manifest says %s", packed.Manifest.CreatedAt, m.CreatedAt)
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
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	for _, tt := range []struct {
		shift int64
		want  string
	}{
		{1000, "runs past its end record"},
		{-1, "unexpected 1 bytes between the central directory and its end record"},
	} {
		archive := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a)
		end := archive[len(archive)-22:] // no comment: the end record is last
		if binary.LittleEndian.Uint32(end) != 0x06054b50 {
			t.Fatal("no end record")
		}
		binary.LittleEndian.PutUint32(end[16:], uint32(int64(binary.LittleEndian.Uint32(end[16:]))+tt.shift))
		_, err := openBytes(archive, hotpatch.DefaultLimits)
		wantRefusal(t, err, tt.want, nil)
	}
}

// TestOpenOverlap: two directory entries sharing one entry's bytes (how
// the overlapping zip bombs work) are refused, even when the bytes would
// pass for both files.
func TestOpenOverlap(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a, b := hotpatchtest.File("a", []byte("same")), hotpatchtest.File("b", []byte("same"))
	m := craftManifest(key, a, b)
	archive := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a, b)
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
	_, err := openBytes(archive, hotpatch.DefaultLimits)
	wantRefusal(t, err, `entry "files/b" overlaps another`, nil)
}

func TestManifestByteChanged(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	mb := hotpatchtest.EncodeRaw(t, &m)
	sig, err := key.Sign(mb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mb {
		changed := bytes.Clone(mb)
		changed[i] ^= 0x01
		archive := hotpatchtest.BuildZip(t, []hotpatchtest.Entry{
			{Name: hotpatch.ManifestName, Content: changed},
			{Name: hotpatch.SignatureName, Content: sig},
			a,
		})
		p, err := openBytes(archive, hotpatch.DefaultLimits)
		if err == nil {
			err = p.Verify(key.Public())
			if !errors.Is(err, hotpatch.ErrBadSignature) && !errors.Is(err, hotpatch.ErrWrongKey) {
				t.Fatalf("byte %d (%q) changed: Verify says %v", i, mb[i], err)
			}
		}
		if mds.ErrorCode(err) != mds.EINVALID {
			t.Fatalf("byte %d (%q) changed: %v", i, mb[i], err)
		}
	}
}

func TestVerify(t *testing.T) {
	key, other := newKey(t, signing.ECDSAP256), newKey(t, signing.Ed25519)
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	mb := hotpatchtest.EncodeRaw(t, &m)

	p, err := openBytes(hotpatchtest.Package(t, mb, key, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(key.Public()); err != nil {
		t.Fatal(err)
	}
	err = p.Verify(other.Public())
	wantRefusal(t, err, "the package is signed by key "+key.Public().ID()+" (ecdsa-p256), not by this key "+other.Public().ID(), hotpatch.ErrWrongKey)
	if errors.Is(err, hotpatch.ErrBadSignature) {
		t.Error("a wrong key is reported as a bad signature")
	}

	// The manifest names key, but another key of the same kind signed it.
	impostor := newKey(t, signing.ECDSAP256)
	forged, err := openBytes(hotpatchtest.Package(t, mb, impostor, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	err = forged.Verify(key.Public())
	wantRefusal(t, err, "signature does not match the manifest: the package was altered or signed by another key", hotpatch.ErrBadSignature)
	if !errors.Is(err, signing.ErrBadSignature) || errors.Is(err, hotpatch.ErrWrongKey) {
		t.Errorf("%v: does not match signing.ErrBadSignature, or matches ErrWrongKey", err)
	}

	// Same key ID, other algorithm: refused before the signature is read.
	m.Alg = signing.Ed25519
	mixed, err := openBytes(hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, a), hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	wantRefusal(t, mixed.Verify(key.Public()), "(ed25519), not by this key", hotpatch.ErrWrongKey)
}

func TestCorruptFiles(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	content := []byte("hello world!")
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	tests := []struct {
		name string
		file hotpatchtest.Entry // the entry of lib/x, whose manifest entry is
		size int64              // this size
		sha  string
		want string
	}{
		{"one byte differs", hotpatchtest.File("lib/x", []byte("hello world?")), 12, sum(content), "file lib/x does not match its sha256 in the manifest"},
		{"one byte differs, stored", hotpatchtest.Entry{Name: "files/lib/x", Content: []byte("hello world?"), Method: zip.Store}, 12, sum(content), "file lib/x does not match its sha256"},
		{"longer than the header says", hotpatchtest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(11))}, 11, sum(content[:11]), "file lib/x holds more than the 11 bytes the manifest declares"},
		{"shorter than the header says", hotpatchtest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, DeclaredSize: new(int64(13))}, 13, sum(append(content, '!')), "file lib/x ends after 12 bytes, but the manifest declares 13"},
		{"CRC wrong", hotpatchtest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true, BadCRC: true}, 12, sum(content), "file lib/x does not match the CRC-32"},
		{"deflate stream broken", hotpatchtest.Entry{Name: "files/lib/x", Content: content, Method: zip.Deflate, Raw: true}, 12, sum(content), "file lib/x does not decompress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := craftManifest(key, hotpatchtest.File("a", []byte("alpha")), tt.file)
			m.Files[1].Size, m.Files[1].SHA256 = tt.size, tt.sha
			archive := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, hotpatchtest.File("a", []byte("alpha")), tt.file)
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
			p, err := openBytes(archive, hotpatch.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(key.Public()); err != nil {
				t.Fatal(err)
			}
			wantRefusal(t, p.CheckFiles(), tt.want, hotpatch.ErrCorrupt)
			out := t.TempDir()
			wantRefusal(t, p.Extract(out), tt.want, hotpatch.ErrCorrupt)
			// a came first and was written whole; lib/x is not to be
			// trusted, and the caller removes out.
			if b, err := os.ReadFile(filepath.Join(out, "a")); err != nil || string(b) != "alpha" {
				t.Errorf("a: %q, %v", b, err)
			}
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
	zeros := hotpatchtest.File("zeros", make([]byte, 50<<20))
	m := craftManifest(key, zeros)
	archive := hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, zeros)
	if len(archive) > 1<<20 {
		t.Fatalf("the bomb is %d bytes; it should deflate to far less", len(archive))
	}
	r := &countingReaderAt{r: bytes.NewReader(archive)}
	_, err := hotpatch.Open(r, int64(len(archive)), hotpatch.DefaultLimits)
	wantRefusal(t, err, `entry "files/zeros" inflates from`, nil)
	wantRefusal(t, err, "refused as a zip bomb", nil)
	if n := r.n.Load(); n > int64(len(archive))/10 {
		t.Errorf("Open read %d bytes of a %d-byte bomb", n, len(archive))
	}

	// The ratio is what refused it: with room for it, it opens and checks.
	p, err := openBytes(archive, hotpatch.Limits{MaxRatio: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckFiles(); err != nil {
		t.Fatal(err)
	}

	// Under 1 MiB any ratio goes.
	small := hotpatchtest.File("zeros", make([]byte, 1<<20))
	m = craftManifest(key, small)
	if _, err := openBytes(hotpatchtest.Package(t, hotpatchtest.EncodeRaw(t, &m), key, small), hotpatch.DefaultLimits); err != nil {
		t.Errorf("1 MiB of zeros: %v", err)
	}
}

func TestExtractRefuses(t *testing.T) {
	key := newKey(t, signing.ECDSAP256)
	src := t.TempDir()
	hotpatchtest.WriteFiles(t, src, map[string][]byte{"a/b/c": []byte("c")})
	b, _ := packBytes(t, src, key, testNow)
	p, err := openBytes(b, hotpatch.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	notEmpty := t.TempDir()
	hotpatchtest.WriteFiles(t, notEmpty, map[string][]byte{"keep": []byte("x")})
	wantRefusal(t, p.Extract(notEmpty), "it is not empty", nil)
	if _, err := os.Stat(filepath.Join(notEmpty, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Extract wrote into a directory it refused: %v", err)
	}
	wantRefusal(t, p.Extract(filepath.Join(src, "missing")), "it is not a directory", nil)
	wantRefusal(t, p.Extract(filepath.Join(src, "a", "b", "c")), "it is not a directory", nil)

	out := t.TempDir()
	if err := p.Extract(out); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]fs.FileMode{"a": fs.ModeDir, "a/b": fs.ModeDir, "a/b/c": 0} {
		fi, err := os.Lstat(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil || fi.Mode().Type() != mode {
			t.Errorf("%s: %v, %v", name, fi, err)
		}
	}
	// Extracting again into the same, now full, directory is refused.
	wantRefusal(t, p.Extract(out), "it is not empty", nil)
}

func TestErrorChain(t *testing.T) {
	err := hotpatch.Refuse(hotpatch.ErrCorrupt, []error{signing.ErrBadSignature}, "file %s is bad", "x")
	var e *mds.Error
	if !errors.As(err, &e) || e.Code != mds.EINVALID || e.Message != "file x is bad" {
		t.Fatalf("errors.As: %+v", e)
	}
	if !errors.Is(err, hotpatch.ErrCorrupt) || !errors.Is(err, signing.ErrBadSignature) || errors.Is(err, hotpatch.ErrWrongKey) {
		t.Error("sentinels do not match as they should")
	}
	if err.Error() != "mds: invalid: file x is bad" {
		t.Errorf("Error() = %q", err.Error())
	}
	if got := mds.ErrorMessage(err); got != "file x is bad" {
		t.Errorf("message %q", got)
	}
}

func FuzzOpen(f *testing.F) {
	key := newKey(f, signing.Ed25519)
	f.Add(hotpatchtest.Pack(f, map[string][]byte{"a.txt": []byte(strings.Repeat("patch ", 40)), "lib/b.so": []byte{1, 2, 3}}, baseManifest(), key))
	a := hotpatchtest.File("a", []byte("alpha"))
	m := craftManifest(key, a)
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, a))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	// Layouts Open refuses: a data descriptor, a gap.
	dd, gap := a, a
	dd.DataDescriptor, gap.Before = true, []byte("gap")
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, dd))
	f.Add(hotpatchtest.Package(f, hotpatchtest.EncodeRaw(f, &m), key, gap))
	lim := hotpatch.Limits{MaxFiles: 100, MaxFileSize: 1 << 20, MaxTotalSize: 4 << 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := openBytes(b, lim)
		if err != nil {
			if code := mds.ErrorCode(err); code != mds.EINVALID {
				t.Fatalf("code %q for malformed input: %v", code, err)
			}
			return
		}
		if err := p.Manifest.Validate(); err != nil {
			t.Fatalf("accepted an invalid manifest: %v", err)
		}
		if enc, err := p.Manifest.Encode(); err != nil || !bytes.Equal(enc, p.ManifestBytes) {
			t.Fatalf("accepted a manifest that does not encode to manifest.json: %v", err)
		}
		if hotpatch.FileEntries(p) != len(p.Manifest.Files) {
			t.Fatalf("%d file entries for %d files", hotpatch.FileEntries(p), len(p.Manifest.Files))
		}
		if err := p.CheckFiles(); err != nil && mds.ErrorCode(err) != mds.EINVALID {
			t.Fatalf("CheckFiles: %v", err)
		}
	})
}
