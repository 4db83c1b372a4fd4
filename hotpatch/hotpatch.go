// Package hotpatch reads and writes hotpatch files: an app team's signed
// set of files (opaque bytes to mds) that patches exact installed versions
// of one app on one platform. The server validates a hotpatch on upload,
// and the device SDK validates it again and extracts it. Everything here
// is pure: no HTTP, no storage.
//
// A hotpatch is a ZIP archive whose entries are, in this order and nothing
// else: manifest.json (the manifest's canonical bytes), manifest.sig (the
// team's signature over exactly those bytes, as signing.PrivateKey.Sign
// makes it), then files/<path> for every file the manifest lists, in the
// manifest's order. Entries are stored or deflated regular files, laid
// out from the first byte to the central directory without gaps, each
// local header saying what the central directory says, without data
// descriptors, comments or zip64, so that a streaming reader sees what
// Open checked. Readers in other languages implement the same rules;
// docs/protocol.md states them.
package hotpatch

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
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/signing"
)

// Sentinels that the SDK branches on with errors.Is. The errors that match
// them are *mds.Error values of code EINVALID too.
var (
	// ErrBadSignature: manifest.sig is not the named key's signature of
	// manifest.json; the package was altered, or another key signed it.
	// Errors that match it match signing.ErrBadSignature too.
	ErrBadSignature = errors.New("hotpatch: the signature does not match the manifest")
	// ErrWrongKey: the manifest names another key than the one given.
	ErrWrongKey = errors.New("hotpatch: signed by another key")
	// ErrCorrupt: a file's bytes do not match what the manifest declares.
	ErrCorrupt = errors.New("hotpatch: a file does not match the manifest")
)

// refusal is an *mds.Error that also matches sentinels, so that adapters
// find the code with errors.As and the SDK the cause with errors.Is.
type refusal struct {
	err   *mds.Error
	kinds []error
}

func (r *refusal) Error() string   { return r.err.Error() }
func (r *refusal) Unwrap() []error { return append([]error{r.err}, r.kinds...) }

// refuse returns an EINVALID error that matches kind (and any further
// sentinels in also).
func refuse(kind error, also []error, format string, args ...any) error {
	return &refusal{err: mds.Errorf(mds.EINVALID, format, args...), kinds: append([]error{kind}, also...)}
}

// Limits bound what Open accepts, so that a package cannot exhaust the
// memory, disk or time of whoever reads it. A zero or negative field
// means its DefaultLimits value.
type Limits struct {
	// MaxArchive bounds the hotpatch file itself, in bytes: Open checks
	// it first, before reading anything.
	MaxArchive   int64
	MaxFiles     int   // files, not counting manifest.json and manifest.sig
	MaxFileSize  int64 // bytes of one file, uncompressed
	MaxTotalSize int64 // bytes of all files, uncompressed
	// MaxRatio bounds how many times an entry of more than 1 MiB
	// uncompressed may exceed its compressed size: more is a zip bomb.
	MaxRatio int64
}

// DefaultMaxArchive is the size of the largest hotpatch file, compressed,
// as uploaded, downloaded and opened: 512 MiB. It is DefaultLimits'
// MaxArchive, and the number the server's upload limit for hotpatches and
// the device SDK's download limit use, so that a file one accepts the
// others do too.
const DefaultMaxArchive = 512 << 20

// DefaultLimits are the limits of the server and the SDK unless configured
// otherwise, and the ones Pack makes packages for.
var DefaultLimits = Limits{
	MaxArchive:   DefaultMaxArchive,
	MaxFiles:     10_000,
	MaxFileSize:  256 << 20,
	MaxTotalSize: 512 << 20,
	MaxRatio:     100,
}

// bombFloor is the uncompressed size up to which any compression ratio is
// accepted: a small file of zeros is not an attack.
const bombFloor = 1 << 20

func (l Limits) withDefaults() Limits {
	if l.MaxArchive <= 0 {
		l.MaxArchive = DefaultLimits.MaxArchive
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxFileSize <= 0 {
		l.MaxFileSize = DefaultLimits.MaxFileSize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultLimits.MaxTotalSize
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = DefaultLimits.MaxRatio
	}
	return l
}

// bomb reports whether an entry of u bytes uncompressed and c compressed
// inflates more than the limits allow.
func (l Limits) bomb(u, c uint64) bool {
	if u <= bombFloor {
		return false
	}
	r := uint64(l.MaxRatio)
	if c > math.MaxUint64/r {
		return false // r*c overflows, so it exceeds any u
	}
	return u > r*c
}

// Bounds of file paths.
const (
	MaxPath    = 1024 // bytes of a path
	MaxSegment = 255  // bytes of one segment, what common file systems allow
)

// ValidPath checks the path of a file in a hotpatch: 1 to MaxPath bytes of
// valid UTF-8 without control characters, segments separated by forward
// slashes, none empty, "." or ".." or longer than MaxSegment bytes, not
// absolute, no backslash, no drive letter, no trailing slash. A path that
// passes stays inside the directory it is extracted to on every platform.
func ValidPath(p string) error {
	switch {
	case p == "":
		return mds.Errorf(mds.EINVALID, "a file path is empty; give each file's path relative to the patch root, like lib/arm64/libfix.so")
	case len(p) > MaxPath:
		return mds.Errorf(mds.EINVALID, "file path %.60q… is %d bytes; at most %d", p, len(p), MaxPath)
	case !utf8.ValidString(p):
		return mds.Errorf(mds.EINVALID, "file path %q is not valid UTF-8; rename the file", p)
	case p[0] == '/':
		return mds.Errorf(mds.EINVALID, "file path %q is absolute; give it relative to the patch root, without the leading /", p)
	case strings.HasSuffix(p, "/"):
		return mds.Errorf(mds.EINVALID, "file path %q ends with /; a hotpatch lists files, not directories", p)
	case len(p) >= 2 && p[1] == ':' && ('a' <= p[0] && p[0] <= 'z' || 'A' <= p[0] && p[0] <= 'Z'):
		return mds.Errorf(mds.EINVALID, "file path %q starts with a drive letter; give it relative to the patch root", p)
	}
	for _, r := range p {
		switch {
		case r == '\\':
			return mds.Errorf(mds.EINVALID, "file path %q has a backslash; separate directories with /", p)
		case unicode.IsControl(r):
			return mds.Errorf(mds.EINVALID, "file path %q has the control character U+%04X; rename the file", p, r)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return mds.Errorf(mds.EINVALID, "file path %q has an empty segment (//); separate directories with one /", p)
		case seg == "." || seg == "..":
			return mds.Errorf(mds.EINVALID, "file path %q has a %q segment; give the path without . or .. segments", p, seg)
		case len(seg) > MaxSegment:
			return mds.Errorf(mds.EINVALID, "file path %.60q… has a segment of %d bytes; at most %d", p, len(seg), MaxSegment)
		}
	}
	return nil
}

// source is one file Pack reads, and what its first reading found.
type source struct {
	path   string // in the package
	name   string // on disk, for messages
	open   func() (*os.File, error)
	size   int64
	sha256 [sha256.Size]byte
	crc    uint32
	method uint16
	csize  int64 // compressed size, as written
}

// Pack makes a hotpatch of the files in src, signed with key, and writes
// it to w. src is a directory, every regular file under which becomes a
// file of the package at its path relative to src (empty directories are
// dropped), or a single regular file, packed under its base name. From m
// it takes the app key, platform, targets (which it sorts), patch version
// and notes; it fills in the rest: format, files, key ID, algorithm and
// created_at (now, to the second). It reads every file twice, once for the
// manifest, which comes first, and once to copy it, and fails if a file
// changed in between. It refuses files beyond DefaultLimits, and a
// package that would be larger than DefaultMaxArchive. Packing the same
// files at the same now writes the same bytes. On error, what reached w
// is not a package. It returns the manifest it signed.
func Pack(w io.Writer, m Manifest, src string, key *signing.PrivateKey, now time.Time) (*Manifest, error) {
	return pack(w, m, src, key, now, DefaultLimits)
}

// pack is Pack for packages within lim.
func pack(w io.Writer, m Manifest, src string, key *signing.PrivateKey, now time.Time, lim Limits) (*Manifest, error) {
	lim = lim.withDefaults()
	if key == nil {
		return nil, mds.Errorf(mds.EINVALID, "packing a hotpatch needs the team's private key to sign it")
	}
	sources, closeSrc, err := collect(src)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	if len(sources) > lim.MaxFiles {
		return nil, mds.Errorf(mds.EINVALID, "%s holds %d files; a hotpatch holds at most %d", src, len(sources), lim.MaxFiles)
	}
	fw, _ := flate.NewWriter(nil, flate.DefaultCompression) // the level is valid
	var total int64
	for i := range sources {
		if err := sources[i].measure(fw, lim); err != nil {
			return nil, err
		}
		if total += sources[i].size; total > lim.MaxTotalSize {
			return nil, mds.Errorf(mds.EINVALID, "the files of %s add up to more than %d bytes; a hotpatch holds at most that", src, lim.MaxTotalSize)
		}
	}

	pub := key.Public()
	m.Format = Format
	m.Targets = slices.Clone(m.Targets)
	slices.SortFunc(m.Targets, compareTargets)
	m.CreatedAt = now.UTC().Truncate(time.Second).Format(timeLayout)
	m.KeyID = pub.ID()
	m.Alg = pub.Alg()
	m.Files = make([]File, len(sources))
	for i, s := range sources {
		m.Files[i] = File{Path: s.path, Size: s.size, SHA256: hex.EncodeToString(s.sha256[:])}
	}
	mb, err := m.Encode()
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(mb)
	if err != nil {
		return nil, fmt.Errorf("hotpatch: signing the manifest: %w", err)
	}

	// Known before anything is written: entryHeader adds no extra
	// fields, and the archive no comment.
	size := int64(endLen) + archived(ManifestName, int64(len(mb))) + archived(SignatureName, int64(len(sig)))
	for _, s := range sources {
		size += archived(FilesPrefix+s.path, s.csize)
	}
	if size > lim.MaxArchive {
		return nil, mds.Errorf(mds.EINVALID, "the files of %s make a hotpatch file of %d bytes; a hotpatch file is at most %d: ship fewer or smaller files", src, size, lim.MaxArchive)
	}

	zw := zip.NewWriter(w)
	for _, e := range []struct {
		name string
		b    []byte
	}{{ManifestName, mb}, {SignatureName, sig}} {
		n := int64(len(e.b))
		ew, err := zw.CreateRaw(entryHeader(e.name, zip.Store, crc32.ChecksumIEEE(e.b), n, n))
		if err != nil {
			return nil, err
		}
		if _, err := ew.Write(e.b); err != nil {
			return nil, err
		}
	}
	for _, s := range sources {
		if err := s.copy(zw, fw); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &m, nil
}

// archived is how many bytes an entry of csize bytes of data named name
// takes in a package: its local header, data and central directory record.
func archived(name string, csize int64) int64 {
	return localHeaderLen + dirHeaderLen + 2*int64(len(name)) + csize
}

// collect lists the files of src, sorted by path, refusing anything but
// directories and regular files. The returned function closes what it
// opened.
func collect(src string) ([]source, func(), error) {
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
			return mds.Errorf(mds.EINVALID, "%s is %s; a hotpatch holds regular files only: replace it with the file itself, or remove it", name, describeMode(t))
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
		return nil, nil, mds.Errorf(mds.EINVALID, "%s holds no files; a hotpatch holds at least one", src)
	}
	// The walk goes directory by directory, which is not bytewise order:
	// "a/b" before "a-b".
	slices.SortFunc(sources, func(a, b source) int { return strings.Compare(a.path, b.path) })
	return sources, func() { root.Close() }, nil
}

// openRegular opens s and checks that what it opened is a regular file,
// which the walk saw but which may have been replaced since.
func (s *source) openRegular() (*os.File, os.FileInfo, error) {
	f, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, mds.Errorf(mds.EINVALID, "%s is %s; a hotpatch holds regular files only", s.name, describeMode(fi.Mode().Type()))
	}
	return f, fi, nil
}

// measure reads s once for its size, sums and compressed size, and picks
// its method: deflate, unless that does not make it smaller or would make
// it look like a zip bomb to Open.
func (s *source) measure(fw *flate.Writer, lim Limits) error {
	f, fi, err := s.openRegular()
	if err != nil {
		return err
	}
	defer f.Close()
	if fi.Size() > lim.MaxFileSize {
		return mds.Errorf(mds.EINVALID, "%s is %d bytes; a hotpatch file is at most %d", s.name, fi.Size(), lim.MaxFileSize)
	}
	h, c, cw := sha256.New(), crc32.NewIEEE(), &counter{w: io.Discard}
	fw.Reset(cw)
	n, err := io.Copy(io.MultiWriter(h, c, fw), io.LimitReader(f, lim.MaxFileSize+1))
	if err == nil {
		err = fw.Close()
	}
	if err != nil {
		return fmt.Errorf("hotpatch: reading %s: %w", s.name, err)
	}
	if n > lim.MaxFileSize {
		return mds.Errorf(mds.EINVALID, "%s grew past %d bytes while being packed; a hotpatch file is at most that", s.name, lim.MaxFileSize)
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
func (s *source) copy(zw *zip.Writer, fw *flate.Writer) error {
	ew, err := zw.CreateRaw(entryHeader(FilesPrefix+s.path, s.method, s.crc, s.size, s.csize))
	if err != nil {
		return err
	}
	f, _, err := s.openRegular()
	if err != nil {
		return err
	}
	defer f.Close()
	cw := &counter{w: ew}
	var out io.Writer = cw
	if s.method == zip.Deflate {
		fw.Reset(cw)
		out = fw
	}
	h := sha256.New()
	src := &sourceReader{r: io.LimitReader(f, s.size+1)}
	n, err := io.Copy(io.MultiWriter(h, out), src)
	if err == nil && s.method == zip.Deflate {
		err = fw.Close()
	}
	if src.err != nil {
		return fmt.Errorf("hotpatch: reading %s: %w", s.name, src.err)
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
