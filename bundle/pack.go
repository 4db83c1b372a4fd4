package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/signing"
)

// source is one file Pack reads, and what its first reading found.
type source struct {
	path   string // in the bundle
	name   string // on disk, for messages
	open   func() (*os.File, error)
	size   int64
	sha256 [sha256.Size]byte
	crc    uint32
	method uint16
	csize  int64 // compressed size, as written
}

// Pack makes a bundle of the files in src, signed with key, and writes it
// to w. src is a directory, every regular file under which becomes a file
// of the bundle at its path relative to src (empty directories are
// dropped), or a single regular file, packed under its base name. Pack
// measures the files, sorted by path, refuses the list if ValidFiles
// does (two names that differ only in case), and passes it to manifest,
// which returns the canonical bytes of the kind's manifest listing them,
// having validated what else it holds; Pack signs those bytes and writes
// the archive. It reads every file twice, once for the manifest, which comes
// first, and once to copy it, and fails if a file changed in between.
// Each file is deflated when that makes it smaller and does not make it
// look like a zip bomb, and stored otherwise. It refuses files beyond
// lim, and a bundle larger than lim.MaxArchive, before writing anything.
// Packing the same files with the same manifest bytes writes the same
// bytes (when key's signatures are deterministic, as Ed25519's are). On
// error, what reached w is not a bundle.
func Pack(w io.Writer, f Format, src string, key *signing.PrivateKey, lim Limits, manifest func(files []File) ([]byte, error)) error {
	lim = lim.withDefaults()
	if key == nil {
		return mds.Errorf(mds.EINVALID, "packing %s needs the team's private key to sign it", f.Noun)
	}
	sources, closeSrc, err := collect(f, src)
	if err != nil {
		return err
	}
	defer closeSrc()
	if len(sources) > lim.MaxFiles {
		return mds.Errorf(mds.EINVALID, "%s holds %d files; %s holds at most %d", src, len(sources), f.Noun, lim.MaxFiles)
	}
	fw, _ := flate.NewWriter(nil, flate.DefaultCompression) // the level is valid
	var total int64
	for i := range sources {
		if err := sources[i].measure(f, fw, lim); err != nil {
			return err
		}
		if total += sources[i].size; total > lim.MaxTotalSize {
			return mds.Errorf(mds.EINVALID, "the files of %s add up to more than %d bytes; %s holds at most that", src, lim.MaxTotalSize, f.Noun)
		}
	}

	files := make([]File, len(sources))
	for i, s := range sources {
		files[i] = File{Path: s.path, Size: s.size, SHA256: hex.EncodeToString(s.sha256[:])}
	}
	// The paths are valid and sorted; two may still differ only in case.
	if err := ValidFiles(files); err != nil {
		return err
	}
	mb, err := manifest(files)
	if err != nil {
		return err
	}
	if len(mb) > MaxManifest {
		return mds.Errorf(mds.EINVALID, "the manifest is %d bytes; at most %d: ship fewer files, or shorter paths", len(mb), MaxManifest)
	}
	sig, err := key.Sign(mb)
	if err != nil {
		return fmt.Errorf("bundle: signing the manifest: %w", err)
	}

	// Known before anything is written: entryHeader adds no extra
	// fields, and the archive no comment.
	size := headSize(len(mb), len(sig))
	for _, s := range sources {
		size += archived(FilesPrefix+s.path, s.csize)
	}
	if size > lim.MaxArchive {
		return mds.Errorf(mds.EINVALID, "the files of %s make %s file of %d bytes; %s file is at most %d: ship fewer or smaller files", src, f.Noun, size, f.Noun, lim.MaxArchive)
	}

	zw := zip.NewWriter(w)
	if err := writeHead(zw, mb, sig); err != nil {
		return err
	}
	for _, s := range sources {
		if err := s.copy(f, zw, fw); err != nil {
			return err
		}
	}
	return zw.Close()
}

// writeHead writes manifest.json and manifest.sig, stored, as the first
// entries of zw.
func writeHead(zw *zip.Writer, manifest, sig []byte) error {
	for _, e := range []struct {
		name string
		b    []byte
	}{{ManifestName, manifest}, {SignatureName, sig}} {
		n := int64(len(e.b))
		ew, err := zw.CreateRaw(entryHeader(e.name, zip.Store, crc32.ChecksumIEEE(e.b), n, n))
		if err != nil {
			return err
		}
		if _, err := ew.Write(e.b); err != nil {
			return err
		}
	}
	return nil
}

// headSize is how many bytes a bundle takes besides its file entries: the
// end record, and the entries of a manifest of manifestLen bytes and a
// signature of sigLen, stored.
func headSize(manifestLen, sigLen int) int64 {
	return endLen + archived(ManifestName, int64(manifestLen)) + archived(SignatureName, int64(sigLen))
}

// archived is how many bytes an entry of csize bytes of data named name
// takes in a bundle: its local header, data and central directory record.
func archived(name string, csize int64) int64 {
	return localHeaderLen + dirHeaderLen + 2*int64(len(name)) + csize
}

// collect lists the files of src, sorted by path, refusing anything but
// directories and regular files. The returned function closes what it
// opened.
func collect(f Format, src string) ([]source, func(), error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case fi.Mode().IsRegular():
		base := filepath.Base(src)
		if err := ValidPath(base); err != nil {
			return nil, nil, err
		}
		open := func() (*os.File, error) { return os.Open(src) }
		return []source{{path: base, name: src, open: open}}, func() {}, nil
	case !fi.IsDir():
		return nil, nil, mds.Errorf(mds.EINVALID, "%s is %s; pack a directory or a regular file", src, describeMode(fi.Mode().Type()))
	}
	// os.Root keeps the reads inside src, even if a symlink appears there
	// after the walk.
	root, err := os.OpenRoot(src)
	if err != nil {
		return nil, nil, err
	}
	var sources []source
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := filepath.Join(src, filepath.FromSlash(p))
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t.IsRegular():
		default:
			return mds.Errorf(mds.EINVALID, "%s is %s; %s holds regular files only: replace it with the file itself, or remove it", name, describeMode(t), f.Noun)
		}
		if err := ValidPath(p); err != nil {
			return err
		}
		open := func() (*os.File, error) { return root.Open(filepath.FromSlash(p)) }
		sources = append(sources, source{path: p, name: name, open: open})
		return nil
	})
	if err != nil {
		root.Close()
		return nil, nil, err
	}
	if len(sources) == 0 {
		root.Close()
		return nil, nil, mds.Errorf(mds.EINVALID, "%s holds no files; %s holds at least one", src, f.Noun)
	}
	// The walk goes directory by directory, which is not bytewise order:
	// "a/b" before "a-b".
	slices.SortFunc(sources, func(a, b source) int { return strings.Compare(a.path, b.path) })
	return sources, func() { root.Close() }, nil
}

// openRegular opens s and checks that what it opened is a regular file,
// which the walk saw but which may have been replaced since.
func (s *source) openRegular(f Format) (*os.File, os.FileInfo, error) {
	file, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, nil, mds.Errorf(mds.EINVALID, "%s is %s; %s holds regular files only", s.name, describeMode(fi.Mode().Type()), f.Noun)
	}
	return file, fi, nil
}

// measure reads s once for its size, sums and compressed size, and picks
// its method: deflate, unless that does not make it smaller or would make
// it look like a zip bomb to Open.
func (s *source) measure(f Format, fw *flate.Writer, lim Limits) error {
	file, fi, err := s.openRegular(f)
	if err != nil {
		return err
	}
	defer file.Close()
	if fi.Size() > lim.MaxFileSize {
		return mds.Errorf(mds.EINVALID, "%s is %d bytes; a file in %s is at most %d", s.name, fi.Size(), f.Noun, lim.MaxFileSize)
	}
	h, c, cw := sha256.New(), crc32.NewIEEE(), &counter{w: io.Discard}
	fw.Reset(cw)
	n, err := io.Copy(io.MultiWriter(h, c, fw), io.LimitReader(file, lim.MaxFileSize+1))
	if err == nil {
		err = fw.Close()
	}
	if err != nil {
		return fmt.Errorf("bundle: reading %s: %w", s.name, err)
	}
	if n > lim.MaxFileSize {
		return mds.Errorf(mds.EINVALID, "%s grew past %d bytes while being packed; a file in %s is at most that", s.name, lim.MaxFileSize, f.Noun)
	}
	s.size, s.crc = n, c.Sum32()
	h.Sum(s.sha256[:0])
	s.method, s.csize = zip.Deflate, cw.n
	if cw.n >= n || lim.bomb(uint64(n), uint64(cw.n)) {
		s.method, s.csize = zip.Store, n
	}
	return nil
}

// copy writes s into zw as measured, hashing it again on the way, and
// fails if it is not the same file any more.
func (s *source) copy(f Format, zw *zip.Writer, fw *flate.Writer) error {
	ew, err := zw.CreateRaw(entryHeader(FilesPrefix+s.path, s.method, s.crc, s.size, s.csize))
	if err != nil {
		return err
	}
	file, _, err := s.openRegular(f)
	if err != nil {
		return err
	}
	defer file.Close()
	cw := &counter{w: ew}
	var out io.Writer = cw
	if s.method == zip.Deflate {
		fw.Reset(cw)
		out = fw
	}
	h := sha256.New()
	src := &sourceReader{r: io.LimitReader(file, s.size+1)}
	n, err := io.Copy(io.MultiWriter(h, out), src)
	if err == nil && s.method == zip.Deflate {
		err = fw.Close()
	}
	if src.err != nil {
		return fmt.Errorf("bundle: reading %s: %w", s.name, src.err)
	}
	if err != nil {
		return err
	}
	var sum [sha256.Size]byte
	if n != s.size || cw.n != s.csize || !bytes.Equal(h.Sum(sum[:0]), s.sha256[:]) {
		return mds.Errorf(mds.EINVALID, "%s changed while being packed; pack again once nothing writes to it", s.name)
	}
	return nil
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// entryHeader is the header of every entry Pack and WriteCanonical write:
// sizes and CRC in the local header (no data descriptor, which streaming
// readers such as Java's ZipInputStream cannot take for stored entries),
// UTF-8 names, a fixed time and mode so that the same input packs to the
// same bytes.
func entryHeader(name string, method uint16, crc uint32, size, csize int64) *zip.FileHeader {
	fh := &zip.FileHeader{
		Name:               name,
		Method:             method,
		Flags:              0x800, // names are UTF-8
		ReaderVersion:      20,
		CRC32:              crc,
		CompressedSize64:   uint64(csize),
		UncompressedSize64: uint64(size),
		// CreateRaw writes the MS-DOS fields as they are: 1980-01-01
		// 00:00, the format's epoch.
		ModifiedDate: 1<<5 | 1,
	}
	fh.SetMode(0o644)
	fh.CreatorVersion |= 20
	return fh
}
