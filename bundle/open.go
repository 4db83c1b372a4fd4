package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/signing"
)

// Bundle is a bundle whose structure Open checked. Its manifest is
// trusted only once Verify passes, and its files once CheckFiles or
// Extract has read them.
type Bundle struct {
	ManifestBytes []byte // manifest.json, exactly: what the signature covers
	Signature     []byte // manifest.sig
	Files         []File // the files the manifest lists, in its order

	entries []*zip.File // the file entries, in the manifest's order
}

// Open checks the structure of the bundle of size bytes in r against lim
// before anything in it is trusted: its size, its layout (entries from
// the first byte on, each local header saying what the central directory
// says, no gaps, data descriptors, comments or zip64), the entries, their
// order, names, kinds, methods and sizes. It passes manifest.json to
// parse, which checks it as the kind's manifest and returns the files it
// lists; Open checks that list (ValidFiles) and holds the file entries to
// it. It reads the archive's end record first, and refuses too many
// entries before reading their records; then the directory, the local
// headers, manifest.json and manifest.sig, and no file's content.
// Refusals are EINVALID errors, worded for f; parse's errors are
// returned as they are; an error of r itself is returned wrapped.
func Open(r io.ReaderAt, size int64, f Format, lim Limits, parse func(manifest []byte) ([]File, error)) (*Bundle, error) {
	lim = lim.withDefaults()
	if size > lim.MaxArchive {
		return nil, mds.Errorf(mds.EINVALID, "the file is %d bytes; %s file is at most %d", size, f.Noun, lim.MaxArchive)
	}
	br := &bounded{r: r, size: size}
	recs, dirOffset, err := f.readDirectory(br, size, lim)
	if err != nil {
		return nil, err
	}
	if err := f.checkLayout(br, recs, dirOffset); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(br, size)
	// ErrInsecurePath comes with a usable reader; the names are checked
	// below, more strictly.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		if malformed(err) {
			return nil, f.notZip("%v", err)
		}
		return nil, fmt.Errorf("bundle: reading the archive: %w", err)
	}
	entries := zr.File
	if err := f.sameAsRead(entries, recs); err != nil {
		return nil, err
	}
	if err := f.checkEntries(entries, lim); err != nil {
		return nil, err
	}
	if len(entries) == 0 || entries[0].Name != ManifestName {
		first := "none"
		if len(entries) > 0 {
			first = fmt.Sprintf("%q", entries[0].Name)
		}
		return nil, mds.Errorf(mds.EINVALID, "the first entry of the archive is %s; %s starts with %s, then %s", first, f.Noun, ManifestName, SignatureName)
	}
	if len(entries) < 2 || entries[1].Name != SignatureName {
		second := "missing"
		if len(entries) > 1 {
			second = fmt.Sprintf("%q", entries[1].Name)
		}
		return nil, mds.Errorf(mds.EINVALID, "the second entry of the archive is %s; %s has %s right after %s: sign the manifest", second, f.Noun, SignatureName, ManifestName)
	}
	mb, err := readSmall(entries[0], MaxManifest)
	if err != nil {
		return nil, err
	}
	files, err := parse(mb)
	if err != nil {
		return nil, err
	}
	// The kind's parser validated its manifest; checked again here since
	// Extract relies on what it promises, whoever parsed.
	if err := ValidFiles(files); err != nil {
		return nil, err
	}
	sig, err := readSmall(entries[1], MaxSignature)
	if err != nil {
		return nil, err
	}
	if len(sig) == 0 {
		return nil, mds.Errorf(mds.EINVALID, "%s is empty; sign the manifest", SignatureName)
	}
	fileEntries := entries[2:]
	if err := f.matchFiles(fileEntries, files); err != nil {
		return nil, err
	}
	return &Bundle{ManifestBytes: mb, Signature: sig, Files: files, entries: fileEntries}, nil
}

// errOutside is what a read outside the archive fails with: the archive
// points there, so the archive is malformed, whatever r would say.
var errOutside = errors.New("an offset outside the archive")

// bounded refuses reads outside the size bytes of r.
type bounded struct {
	r    io.ReaderAt
	size int64
}

func (b *bounded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > b.size {
		return 0, errOutside
	}
	if rest := b.size - off; int64(len(p)) > rest {
		n, err := b.r.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return b.r.ReadAt(p, off)
}

// malformed reports whether err says the bytes read are not what they
// claim to be, as opposed to a failure of the reader.
func malformed(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, errOutside) || errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm) || errors.Is(err, zip.ErrChecksum) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &corrupt)
}

// checkEntries checks what the central directory says of every entry,
// before any is read; checkLayout checked where they are.
func (f Format) checkEntries(entries []*zip.File, lim Limits) error {
	seen := make(map[string]bool, len(entries))
	var total uint64
	for i, e := range entries {
		if seen[e.Name] {
			return mds.Errorf(mds.EINVALID, "entry %q appears twice in the archive", e.Name)
		}
		seen[e.Name] = true
		if t := e.Mode() & fs.ModeType; t != 0 {
			return mds.Errorf(mds.EINVALID, "entry %q is %s; %s holds regular files only", e.Name, describeMode(t), f.Noun)
		}
		if e.Flags&flagEncrypt != 0 {
			return mds.Errorf(mds.EINVALID, "entry %q is encrypted; %s is signed, not encrypted", e.Name, f.Noun)
		}
		switch e.Method {
		case zip.Deflate:
		case zip.Store:
			if e.CompressedSize64 != e.UncompressedSize64 {
				return mds.Errorf(mds.EINVALID, "entry %q is stored, but its compressed size %d is not its size %d", e.Name, e.CompressedSize64, e.UncompressedSize64)
			}
		default:
			return mds.Errorf(mds.EINVALID, "entry %q uses compression method %d; %s uses store (0) or deflate (8) only", e.Name, e.Method, f.Noun)
		}
		// The first two are manifest.json and manifest.sig, or refused
		// by name below; readSmall bounds them.
		if i >= 2 {
			if e.UncompressedSize64 > uint64(lim.MaxFileSize) {
				return mds.Errorf(mds.EINVALID, "entry %q is %d bytes uncompressed; at most %d are accepted", e.Name, e.UncompressedSize64, lim.MaxFileSize)
			}
			if total += e.UncompressedSize64; total > uint64(lim.MaxTotalSize) {
				return mds.Errorf(mds.EINVALID, "the files of the archive add up to more than %d bytes uncompressed, the most accepted", lim.MaxTotalSize)
			}
		}
		if lim.bomb(e.UncompressedSize64, e.CompressedSize64) {
			return mds.Errorf(mds.EINVALID, "entry %q inflates from %d to %d bytes, more than %d times: refused as a zip bomb", e.Name, e.CompressedSize64, e.UncompressedSize64, lim.MaxRatio)
		}
	}
	return nil
}

func describeMode(t fs.FileMode) string {
	switch {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	case t&fs.ModeDevice != 0:
		return "a device"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

// matchFiles checks that the file entries are exactly the manifest's
// files, in its order, with its sizes.
func (f Format) matchFiles(entries []*zip.File, files []File) error {
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name] = true
	}
	listed := make(map[string]bool, len(files))
	for _, file := range files {
		name := FilesPrefix + file.Path
		listed[name] = true
		if !names[name] {
			return mds.Errorf(mds.EINVALID, "the archive lacks %s, which the manifest lists", name)
		}
	}
	for _, e := range entries {
		if !listed[e.Name] {
			return mds.Errorf(mds.EINVALID, "entry %q is not listed in the manifest; %s holds only %s, %s and the files its manifest lists", e.Name, f.Noun, ManifestName, SignatureName)
		}
	}
	// Same sets of distinct names, so the counts are equal too.
	for i, e := range entries {
		want := files[i]
		if e.Name != FilesPrefix+want.Path {
			return mds.Errorf(mds.EINVALID, "entry %d of the archive is %s where the manifest lists %s%s: file entries must follow the manifest's order", i+3, e.Name, FilesPrefix, want.Path)
		}
		if e.UncompressedSize64 != uint64(want.Size) {
			return refuse(ErrCorrupt, nil, "file %s is %d bytes in the archive but the manifest declares %d", want.Path, e.UncompressedSize64, want.Size)
		}
	}
	return nil
}

// entryReader returns the content of e, decompressed here from its raw
// bytes so that the bounds and checks on it are this package's.
func entryReader(e *zip.File) (io.ReadCloser, error) {
	raw, err := e.OpenRaw()
	if err != nil {
		return nil, err
	}
	if e.Method == zip.Deflate {
		return flate.NewReader(raw), nil
	}
	return io.NopCloser(raw), nil
}

// readSmall reads manifest.json or manifest.sig, refusing more than max
// bytes whatever the header claims.
func readSmall(e *zip.File, max int64) ([]byte, error) {
	if e.UncompressedSize64 > uint64(max) {
		return nil, mds.Errorf(mds.EINVALID, "%s is %d bytes; at most %d", e.Name, e.UncompressedSize64, max)
	}
	var buf bytes.Buffer
	err := copyEntry(&buf, e, e.Name, int64(e.UncompressedSize64), "")
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sourceReader keeps the error of reading an entry or a file, to tell it
// from one of writing its bytes out.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// copyEntry copies the content of e, which the manifest calls name, to w,
// reading at most size+1 bytes, and checks that it is size bytes long,
// has the zip header's CRC-32 (which other zip readers check, so that a
// bundle mds accepts is one they read) and, unless sum is "", the SHA-256
// sum.
func copyEntry(w io.Writer, e *zip.File, name string, size int64, sum string) error {
	rc, err := entryReader(e)
	if err != nil {
		return readFailure(name, err)
	}
	defer rc.Close()
	src := &sourceReader{r: io.LimitReader(rc, size+1)}
	h, c := sha256.New(), crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(w, h, c), src)
	switch {
	case src.err != nil:
		return readFailure(name, src.err)
	case err != nil:
		return err
	case n > size:
		return refuse(ErrCorrupt, nil, "file %s holds more than the %d bytes the manifest declares: the package is corrupt; download or build it again", name, size)
	case n < size:
		return refuse(ErrCorrupt, nil, "file %s ends after %d bytes, but the manifest declares %d: the package is corrupt; download or build it again", name, n, size)
	case c.Sum32() != e.CRC32:
		return refuse(ErrCorrupt, nil, "file %s does not match the CRC-32 of its zip header: the package is corrupt; download or build it again", name)
	case sum != "" && hex.EncodeToString(h.Sum(nil)) != sum:
		return refuse(ErrCorrupt, nil, "file %s does not match its sha256 in the manifest: the package is corrupt or was altered after signing", name)
	}
	return nil
}

func readFailure(name string, err error) error {
	if malformed(err) {
		return refuse(ErrCorrupt, nil, "file %s does not decompress (%v): the package is corrupt; download or build it again", name, err)
	}
	return fmt.Errorf("bundle: reading %s: %w", name, err)
}

// Verify checks that pub signed the bundle's manifest, which names the
// key keyID of algorithm alg as its signer: the kind's manifest says
// which. It says nothing of the files: CheckFiles and Extract hold them
// to the manifest.
func (b *Bundle) Verify(pub *signing.PublicKey, keyID string, alg signing.Alg) error {
	if keyID != pub.ID() || alg != pub.Alg() {
		return refuse(ErrWrongKey, nil, "the package is signed by key %s (%s), not by this key %s (%s): verify it with the key that signed it, or have the team sign it with one this build trusts", keyID, alg, pub.ID(), pub.Alg())
	}
	if err := pub.Verify(b.ManifestBytes, b.Signature); err != nil {
		return refuse(ErrBadSignature, []error{err}, "signature does not match the manifest: the package was altered or signed by another key")
	}
	return nil
}

// CheckFiles reads every file and checks its size and SHA-256 against the
// manifest, writing nothing: what the server does on upload.
func (b *Bundle) CheckFiles() error {
	for i, f := range b.Files {
		if err := copyEntry(io.Discard, b.entries[i], f.Path, f.Size, f.SHA256); err != nil {
			return err
		}
	}
	return nil
}

// Extract writes the bundle's files under dir, which must exist and be
// empty, and syncs them and the directories it creates to disk. It checks
// every file's size and SHA-256 as it writes it. On error, what it wrote
// stays: the caller removes dir.
func (b *Bundle) Extract(dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return mds.Errorf(mds.EINVALID, "cannot extract into %s: it is not a directory; create an empty one", dir)
	}
	if des, err := os.ReadDir(dir); err != nil {
		return fmt.Errorf("bundle: reading %s: %w", dir, err)
	} else if len(des) > 0 {
		return mds.Errorf(mds.EINVALID, "cannot extract into %s: it is not empty; extract into a new empty directory", dir)
	}
	// os.Root keeps every operation inside dir, even through a symlink
	// something else put there meanwhile.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	defer root.Close()
	created := map[string]bool{} // the directories made so far, by slash path
	var dirs []string            // the same, in the order made
	for i, f := range b.Files {
		// ValidPath already guarantees it; checked again since a path
		// that escaped would write anywhere.
		name := filepath.FromSlash(f.Path)
		if ValidPath(f.Path) != nil || !filepath.IsLocal(name) {
			return mds.Errorf(mds.EINVALID, "file path %q is not local to the directory it is extracted to on this system", f.Path)
		}
		var missing []string
		for d := path.Dir(f.Path); d != "." && !created[d]; d = path.Dir(d) {
			missing = append(missing, d)
		}
		for j := len(missing) - 1; j >= 0; j-- {
			d := missing[j]
			if err := root.Mkdir(filepath.FromSlash(d), 0o755); err != nil {
				return fmt.Errorf("bundle: creating directory %s: %w", d, err)
			}
			created[d] = true
			dirs = append(dirs, d)
		}
		if err := b.extractFile(root, i, name); err != nil {
			return err
		}
	}
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for syncing there
	}
	// The innermost first, each before the directory holding its entry.
	for i := len(dirs) - 1; i >= -1; i-- {
		d := "."
		if i >= 0 {
			d = filepath.FromSlash(dirs[i])
		}
		if err := syncDir(root, d); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bundle) extractFile(root *os.Root, i int, name string) error {
	f := b.Files[i]
	// O_EXCL: a file already there means two paths met, as on a
	// case-insensitive file system; never overwrite.
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("bundle: creating %s: %w", f.Path, err)
	}
	err = copyEntry(out, b.entries[i], f.Path, f.Size, f.SHA256)
	if err == nil {
		err = out.Sync()
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = out.Stat(); err == nil && fi.Size() != f.Size {
			err = fmt.Errorf("bundle: %s is %d bytes on disk after writing %d", f.Path, fi.Size(), f.Size)
		}
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil && !isRefusal(err) {
		return fmt.Errorf("bundle: writing %s: %w", f.Path, err)
	}
	return err
}

func isRefusal(err error) bool {
	var e *mds.Error
	return errors.As(err, &e)
}

func syncDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("bundle: syncing %s: %w", name, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bundle: syncing %s: %w", name, err)
	}
	return nil
}
