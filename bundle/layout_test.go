package bundle_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/bundle/bundletest"
	"github.com/mds-dev/mds/signing"
)

var le = binary.LittleEndian

// localHeader is the offset of the local header of the entry named name
// in archive, which has no extra fields.
func localHeader(t *testing.T, archive []byte, name string) int {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name == name {
			off, err := f.DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			return int(off) - 30 - len(name)
		}
	}
	t.Fatalf("no entry %s", name)
	return 0
}

// editDirectory returns archive with each central directory record, in
// order, replaced by what edit returns for it (several records, or a
// changed one), and the end record's directory size to match; the end
// record's entry count stays.
func editDirectory(t *testing.T, archive []byte, edit func(i int, rec []byte) []byte) []byte {
	t.Helper()
	end := bytes.Clone(archive[len(archive)-22:])
	if le.Uint32(end) != 0x06054b50 {
		t.Fatal("no end record")
	}
	off, size := int(le.Uint32(end[16:])), int(le.Uint32(end[12:]))
	dir := archive[off : off+size]
	var out bytes.Buffer
	for i := 0; len(dir) > 0; i++ {
		n := 46 + int(le.Uint16(dir[28:])) + int(le.Uint16(dir[30:])) + int(le.Uint16(dir[32:]))
		out.Write(edit(i, bytes.Clone(dir[:n])))
		dir = dir[n:]
	}
	le.PutUint32(end[12:], uint32(out.Len()))
	return slices.Concat(archive[:off], out.Bytes(), end)
}

// withExtra is the central directory record rec with the extra field of
// id holding data appended.
func withExtra(rec []byte, id uint16, data []byte) []byte {
	field := make([]byte, 4, 4+len(data))
	le.PutUint16(field, id)
	le.PutUint16(field[2:], uint16(len(data)))
	field = append(field, data...)
	nameEnd := 46 + int(le.Uint16(rec[28:]))
	extraEnd := nameEnd + int(le.Uint16(rec[30:]))
	le.PutUint16(rec[30:], le.Uint16(rec[30:])+uint16(len(field)))
	return slices.Concat(rec[:extraEnd], field, rec[extraEnd:])
}

// TestOpenLayout: a bundle is its entries from the first byte to the
// central directory, each local header saying what the central directory
// says, then the end record and nothing more. Each of these archives is
// a valid bundle with one thing changed, which every other zip reader
// tolerates and Open did too: bytes hidden among the entries, entries
// that streaming readers see otherwise than the directory says.
func TestOpenLayout(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	a := bundletest.File("a", []byte("alpha"))
	mb := encodeManifest(bundletest.Files(a))
	sig, err := key.Sign(mb)
	if err != nil {
		t.Fatal(err)
	}
	// build is the bundle with its entries changed by change.
	build := func(change func(e []bundletest.Entry)) []byte {
		e := []bundletest.Entry{{Name: bundle.ManifestName, Content: mb}, {Name: bundle.SignatureName, Content: sig}, a}
		change(e)
		return bundletest.BuildZip(t, e)
	}
	valid := build(func([]bundletest.Entry) {})
	if _, err := openBytes(valid, bundle.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	// patchLocal is valid with the local header of files/a changed.
	patchLocal := func(change func(h []byte)) []byte {
		b := bytes.Clone(valid)
		change(b[localHeader(t, b, "files/a"):])
		return b
	}
	// patchDir is valid with the central directory record of files/a
	// changed.
	patchDir := func(change func(rec []byte) []byte) []byte {
		return editDirectory(t, valid, func(i int, rec []byte) []byte {
			if i == 2 {
				return change(rec)
			}
			return rec
		})
	}
	patchEnd := func(change func(end []byte)) []byte {
		b := bytes.Clone(valid)
		change(b[len(b)-22:])
		return b
	}
	junk := bytes.Repeat([]byte("unsigned "), 1<<20/6) // 1.5 MiB
	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"a prefix", build(func(e []bundletest.Entry) { e[0].Before = []byte("#!/bin/sh\n") }),
			"unexpected 10 bytes before the first entry 1 (manifest.json); a test bundle starts with its first entry: pack it with mds test pack"},
		{"a gap between entries", build(func(e []bundletest.Entry) { e[2].Before = []byte("junk") }),
			"unexpected 4 bytes between entries 2 (manifest.sig) and 3 (files/a); a test bundle's entries follow each other without gaps"},
		{"a gap after an entry", build(func(e []bundletest.Entry) { e[0].After = []byte("junk") }),
			"unexpected 4 bytes between entries 1 (manifest.json) and 2 (manifest.sig)"},
		{"1.5 MiB before the central directory", build(func(e []bundletest.Entry) { e[2].After = junk }),
			fmt.Sprintf("unexpected %d bytes between the last entry 3 (files/a) and the central directory", len(junk))},
		{"a stored entry with a data descriptor", build(func(e []bundletest.Entry) { e[2].Method, e[2].DataDescriptor = zip.Store, true }),
			`entry "files/a" uses a data descriptor (general purpose flag 0x8); a test bundle has each entry's sizes and CRC-32 in its local header: pack it with mds test pack`},
		{"a deflated entry with a data descriptor", build(func(e []bundletest.Entry) { e[2].DataDescriptor = true }),
			`entry "files/a" uses a data descriptor`},
		{"manifest.json with a data descriptor", build(func(e []bundletest.Entry) { e[0].DataDescriptor = true }),
			`entry "manifest.json" uses a data descriptor`},
		{"a data descriptor flag in the local header only", patchLocal(func(h []byte) { h[6] |= 0x8 }),
			`entry "files/a" uses a data descriptor`},
		{"a data descriptor flag in the central directory only", patchDir(func(rec []byte) []byte { rec[8] |= 0x8; return rec }),
			`entry "files/a" uses a data descriptor`},
		{"another name in the local header", patchLocal(func(h []byte) { h[30+6] = 'b' }),
			`the local header of entry "files/a" says the name "files/b" where the central directory says "files/a"; a streaming reader would read another entry than the one checked`},
		{"other flags in the local header", patchLocal(func(h []byte) { h[6] |= 0x2 }),
			`the local header of entry "files/a" says general purpose flags 0x0002 where the central directory says 0x0000`},
		{"another method in the local header", patchLocal(func(h []byte) { h[8] = 0 }),
			`the local header of entry "files/a" says method 0 where the central directory says 8`},
		{"another CRC-32 in the local header", patchLocal(func(h []byte) { h[14] ^= 1 }),
			`the local header of entry "files/a" says CRC-32`},
		{"another compressed size in the local header", patchLocal(func(h []byte) { h[18]-- }),
			`the local header of entry "files/a" says a compressed size of`},
		{"another size in the local header", patchLocal(func(h []byte) { h[22]++ }),
			`the local header of entry "files/a" says a size of 6 where the central directory says 5`},
		{"an archive comment", func() []byte {
			b := patchEnd(func(end []byte) { le.PutUint16(end[20:], 7) })
			return append(b, "comment"...)
		}(), "the archive has a comment of 7 bytes; a test bundle has none: pack it with mds test pack"},
		{"bytes after the end record", append(bytes.Clone(valid), "trail"...),
			"unexpected 5 bytes after the archive's end record; a test bundle ends with it"},
		{"bytes between the central directory and the end record", func() []byte {
			end := valid[len(valid)-22:]
			return slices.Concat(valid[:len(valid)-22], []byte("junk"), end)
		}(), "unexpected 4 bytes between the central directory and its end record"},
		{"an entry comment", patchDir(func(rec []byte) []byte {
			le.PutUint16(rec[32:], 3)
			return append(rec, "abc"...)
		}), `entry "files/a" has a comment; a test bundle's entries have none`},
		{"a zip64 extra field", patchDir(func(rec []byte) []byte { return withExtra(rec, 0x0001, make([]byte, 8)) }),
			`entry "files/a" uses zip64 fields; a test bundle is far smaller than 4 GiB`},
		{"zip64 in the end record", patchEnd(func(end []byte) { le.PutUint16(end[8:], 0xffff); le.PutUint16(end[10:], 0xffff) }),
			"the archive uses zip64 fields"},
		{"large extra fields", patchDir(func(rec []byte) []byte { return withExtra(rec, 0xcafe, make([]byte, 2000)) }),
			"entry 3 has 2004 bytes of extra fields in the central directory; at most 1024"},
		{"several disks", patchEnd(func(end []byte) { le.PutUint16(end[4:], 1) }),
			"the archive spans several disks; a test bundle is one file"},
		{"a long name", func() []byte {
			long := bundletest.File(strings.Repeat("x", 1100), []byte("x"))
			return build(func(e []bundletest.Entry) { e[2] = long })
		}(), "entry 3 has a name of 1106 bytes; a test bundle's entry names are at most 1030"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := openBytes(tt.archive, bundle.DefaultLimits)
			if p != nil {
				t.Error("Open returned a bundle with its error")
			}
			wantRefusal(t, err, tt.want, nil)
		})
	}
}

// TestOpenDirectoryBounds: what the end record says bounds what Open
// reads and allocates, before archive/zip makes a *zip.File of every
// record it finds.
func TestOpenDirectoryBounds(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	valid := craft(t, key, bundletest.File("a", []byte("alpha")))
	withEnd := func(change func(end []byte)) []byte {
		b := bytes.Clone(valid)
		change(b[len(b)-22:])
		return b
	}
	// 65,536 more copies of the last record: archive/zip reads records
	// until one fails and checks their count modulo 65,536 only.
	flood := editDirectory(t, valid, func(i int, rec []byte) []byte {
		if i == 2 {
			return bytes.Repeat(rec, 1+1<<16)
		}
		return rec
	})
	tests := []struct {
		name     string
		archive  []byte
		want     string
		maxRead  int64
		maxAlloc float64
	}{
		{"more entries than MaxFiles", withEnd(func(end []byte) { le.PutUint16(end[8:], 60_000); le.PutUint16(end[10:], 60_000) }),
			"the archive has 60000 entries; at most 10000 files", 22, 20},
		{"records past the count", flood, "unexpected 3473408 bytes in the central directory after its 3 entries", 64 << 10, 200},
		{"a directory too small for its entries", withEnd(func(end []byte) { le.PutUint32(end[12:], 3*46-1) }),
			"its end record gives 3 entries a central directory of 137 bytes", 22, 20},
		{"a directory larger than the archive", withEnd(func(end []byte) { le.PutUint32(end[12:], uint32(len(valid))) }),
			"a central directory of", 22, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			var read int64
			allocs := testing.AllocsPerRun(1, func() {
				r := &countingReaderAt{r: bytes.NewReader(tt.archive)}
				_, err = bundle.Open(r, int64(len(tt.archive)), testKind, bundle.DefaultLimits, parseManifest)
				read = r.n.Load()
			})
			wantRefusal(t, err, tt.want, nil)
			if read > tt.maxRead {
				t.Errorf("Open read %d bytes of the %d-byte archive; at most %d needed", read, len(tt.archive), tt.maxRead)
			}
			if allocs > tt.maxAlloc {
				t.Errorf("Open allocated %v times; at most %v needed", allocs, tt.maxAlloc)
			}
		})
	}
}

// failingReaderAt fails every read, counting them.
type failingReaderAt struct{ reads int }

func (f *failingReaderAt) ReadAt([]byte, int64) (int, error) {
	f.reads++
	return 0, errors.New("read")
}

func TestOpenArchiveSize(t *testing.T) {
	if bundle.DefaultLimits.MaxArchive != bundle.DefaultMaxArchive || bundle.DefaultMaxArchive != 512<<20 {
		t.Errorf("DefaultLimits.MaxArchive %d, DefaultMaxArchive %d; want 512 MiB", bundle.DefaultLimits.MaxArchive, bundle.DefaultMaxArchive)
	}
	// Over the default, refused before reading anything.
	r := &failingReaderAt{}
	_, err := bundle.Open(r, bundle.DefaultMaxArchive+1, testKind, bundle.Limits{}, parseManifest)
	wantRefusal(t, err, fmt.Sprintf("the file is %d bytes; a test bundle file is at most %d", bundle.DefaultMaxArchive+1, bundle.DefaultMaxArchive), nil)
	if r.reads != 0 {
		t.Errorf("Open read %d times", r.reads)
	}
	// At the default, read (and here failing as the reader does).
	_, err = bundle.Open(r, bundle.DefaultMaxArchive, testKind, bundle.Limits{}, parseManifest)
	if err == nil || mds.ErrorCode(err) == mds.EINVALID || r.reads == 0 {
		t.Errorf("a file of DefaultMaxArchive bytes: %v after %d reads; want the reader's error", err, r.reads)
	}

	key := newKey(t, signing.Ed25519)
	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a": []byte("alpha")})
	archive := packBytes(t, src, key)
	n := int64(len(archive))
	if _, err := openBytes(archive, bundle.Limits{MaxArchive: n}); err != nil {
		t.Fatal(err)
	}
	_, err = openBytes(archive, bundle.Limits{MaxArchive: n - 1})
	wantRefusal(t, err, fmt.Sprintf("the file is %d bytes; a test bundle file is at most %d", n, n-1), nil)
}

// TestPackArchiveSize: Pack knows the size of the file it makes before
// writing it, and refuses one Open would.
func TestPackArchiveSize(t *testing.T) {
	key := newKey(t, signing.Ed25519)
	src := t.TempDir()
	bundletest.WriteFiles(t, src, map[string][]byte{"a": []byte("alpha"), "lib/b.so": randomBytes(3000), "c.txt": []byte(strings.Repeat("c", 4000))})
	var buf bytes.Buffer
	if err := pack(&buf, src, key, bundle.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	n := int64(buf.Len())
	var exact bytes.Buffer
	if err := pack(&exact, src, key, bundle.Limits{MaxArchive: n}); err != nil {
		t.Fatalf("packing into exactly its %d bytes: %v", n, err)
	}
	var w countingWriter
	err := pack(&w, src, key, bundle.Limits{MaxArchive: n - 1})
	wantRefusal(t, err, fmt.Sprintf("make a test bundle file of %d bytes; a test bundle file is at most %d", n, n-1), nil)
	if w.n != 0 {
		t.Errorf("Pack wrote %d bytes of a bundle it refused", w.n)
	}
}

type countingWriter struct{ n int }

func (c *countingWriter) Write(b []byte) (int, error) { c.n += len(b); return len(b), nil }

// TestCraftedLayout: bundletest writes what its entries say, and
// nothing else: no data descriptor unless asked, the bytes asked for
// where asked.
func TestCraftedLayout(t *testing.T) {
	plain := bundletest.BuildZip(t, []bundletest.Entry{
		{Name: "s", Content: []byte("stored")}, {Name: "d", Content: []byte("deflated"), Method: zip.Deflate},
		{Name: "ü", Content: []byte("utf-8")},
	})
	zr, err := zip.NewReader(bytes.NewReader(plain), int64(len(plain)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Flags&0x8 != 0 {
			t.Errorf("entry %s has a data descriptor", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("entry %s: %v", f.Name, err)
		}
	}
	if zr.File[2].NonUTF8 {
		t.Error("a UTF-8 name is not marked as such")
	}

	crafted := bundletest.BuildZip(t, []bundletest.Entry{
		{Name: "s", Content: []byte("stored"), Before: []byte("<prefix>"), After: []byte("<after>")},
		{Name: "d", Content: []byte("deflated"), Method: zip.Deflate, Before: []byte("<before>"), DataDescriptor: true},
	})
	zr, err = zip.NewReader(bytes.NewReader(crafted), int64(len(crafted)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(crafted, []byte("<prefix>PK\x03\x04")) || !bytes.Contains(crafted, []byte("stored<after><before>PK\x03\x04")) {
		t.Errorf("the bytes asked for are not where asked: %q", crafted)
	}
	if zr.File[0].Flags&0x8 != 0 || zr.File[1].Flags&0x8 == 0 {
		t.Errorf("flags %#x and %#x; a data descriptor only on the second", zr.File[0].Flags, zr.File[1].Flags)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("entry %s: %v", f.Name, err)
		}
		rc.Close()
	}
}
