// Package bundle reads and writes bundles: an app team's signed set of
// files (opaque bytes to mds) in one ZIP archive. Hotpatches (package
// hotpatch) and H5 offline packages are bundles; each kind brings its own
// manifest, and this package the archive around it, which it refuses
// when malformed (paths, entry types, duplicates, sizes, zip bombs,
// layout) before anything in it is trusted. Everything here is pure: no
// HTTP, no storage.
//
// A bundle is a ZIP archive whose entries are, in this order and nothing
// else: manifest.json (the kind's manifest, in its canonical bytes),
// manifest.sig (the team's signature over exactly those bytes, as
// signing.PrivateKey.Sign makes it), then files/<path> for every file the
// manifest lists, in the manifest's order. Entries are stored or deflated
// regular files, laid out from the first byte to the central directory
// without gaps, each local header saying what the central directory says,
// without data descriptors, comments or zip64, so that a streaming reader
// sees what Open checked. Readers in other languages implement the same
// rules; docs/protocol.md states them.
//
// A kind uses the package through three seams. Pack measures the files
// and asks the kind for the manifest bytes of that file list, which it
// signs; Open asks the kind to parse manifest.json into the file list it
// holds the entries to; Verify takes the key the kind's manifest names.
// A Format names the kind in refusals, so that they speak of "a hotpatch"
// and advise "mds hotpatch pack".
//
// The canonical form of a bundle (WriteCanonical) is the same archive
// with every entry stored: a function of the manifest bytes, the
// signature and the files alone, so that a device that kept manifest.json
// and manifest.sig can rebuild it from the files it installed. It is what
// deltas are computed between, and a valid bundle itself.
package bundle

import (
	"errors"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mds-dev/mds"
)

// Format names a kind of bundle in the messages of refusals. Both fields
// are needed: refusals say them as they are.
type Format struct {
	// Noun names a bundle of the kind with its article: "a hotpatch".
	Noun string
	// Pack is the command that packs one: "mds hotpatch pack".
	Pack string
}

// repack is what layout refusals advise.
func (f Format) repack() string { return "pack it with " + f.Pack }

// Entry names of the archive.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	FilesPrefix   = "files/" // + File.Path
)

// Bounds of manifest.json and manifest.sig. A DER ECDSA P-256 signature
// is at most 72 bytes and an Ed25519 one 64.
const (
	MaxManifest  = 1 << 20
	MaxSignature = 1 << 10
)

// File is one file a bundle holds: its path under the bundle's root, and
// the size and SHA-256 of its bytes. Manifests list their files so.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// TotalSize is the sum of the sizes of list.
func TotalSize(list []File) int64 {
	var n int64
	for _, f := range list {
		n += f.Size
	}
	return n
}

// Sentinels that SDKs branch on with errors.Is. The errors that match
// them are *mds.Error values of code EINVALID too.
var (
	// ErrBadSignature: manifest.sig is not the named key's signature of
	// manifest.json; the bundle was altered, or another key signed it.
	// Errors that match it match signing.ErrBadSignature too.
	ErrBadSignature = errors.New("bundle: the signature does not match the manifest")
	// ErrWrongKey: the manifest names another key than the one given.
	ErrWrongKey = errors.New("bundle: signed by another key")
	// ErrCorrupt: a file's bytes do not match what the manifest declares.
	ErrCorrupt = errors.New("bundle: a file does not match the manifest")
)

// refusal is an *mds.Error that also matches sentinels, so that adapters
// find the code with errors.As and SDKs the cause with errors.Is.
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

// Limits bound what Open accepts, so that a bundle cannot exhaust the
// memory, disk or time of whoever reads it, and what Pack makes. A zero
// or negative field means its DefaultLimits value.
type Limits struct {
	// MaxArchive bounds the bundle file itself, in bytes: Open checks it
	// first, before reading anything.
	MaxArchive   int64
	MaxFiles     int   // files, not counting manifest.json and manifest.sig
	MaxFileSize  int64 // bytes of one file, uncompressed
	MaxTotalSize int64 // bytes of all files, uncompressed
	// MaxRatio bounds how many times an entry of more than 1 MiB
	// uncompressed may exceed its compressed size: more is a zip bomb.
	MaxRatio int64
}

// DefaultMaxArchive is the size of the largest bundle file, compressed,
// as uploaded, downloaded and opened: 512 MiB. It is DefaultLimits'
// MaxArchive, and the number the server's upload limit and the device
// SDK's download limit use, so that a file one accepts the others do too.
const DefaultMaxArchive = 512 << 20

// DefaultLimits are the limits of the server and the SDK unless configured
// otherwise, and the ones kinds pack for.
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

// ValidPath checks the path of a file in a bundle: 1 to MaxPath bytes of
// valid UTF-8 without control characters, segments separated by forward
// slashes, none empty, "." or ".." or longer than MaxSegment bytes, not
// absolute, no backslash, no drive letter, no trailing slash. A path that
// passes stays inside the directory it is extracted to on every platform.
func ValidPath(p string) error {
	switch {
	case p == "":
		return mds.Errorf(mds.EINVALID, "a file path is empty; give each file's path relative to the package root, like lib/app.js")
	case len(p) > MaxPath:
		return mds.Errorf(mds.EINVALID, "file path %.60q… is %d bytes; at most %d", p, len(p), MaxPath)
	case !utf8.ValidString(p):
		return mds.Errorf(mds.EINVALID, "file path %q is not valid UTF-8; rename the file", p)
	case p[0] == '/':
		return mds.Errorf(mds.EINVALID, "file path %q is absolute; give it relative to the package root, without the leading /", p)
	case strings.HasSuffix(p, "/"):
		return mds.Errorf(mds.EINVALID, "file path %q ends with /; a manifest lists files, not directories", p)
	case len(p) >= 2 && p[1] == ':' && ('a' <= p[0] && p[0] <= 'z' || 'A' <= p[0] && p[0] <= 'Z'):
		return mds.Errorf(mds.EINVALID, "file path %q starts with a drive letter; give it relative to the package root", p)
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

// ValidFiles checks the file list of a manifest: at least one file, each
// with a valid path (ValidPath), a size of 0 or more and a SHA-256 of 64
// lowercase hex digits; sorted by path bytewise, without duplicates, no
// two paths equal ignoring case, and no path that is also a directory of
// another. Such a list extracts to distinct files on every platform.
func ValidFiles(list []File) error {
	if len(list) == 0 {
		return mds.Errorf(mds.EINVALID, "the manifest lists no files; a package holds at least one")
	}
	// Keyed by case-folded path: the file systems of iOS and macOS, and
	// often Android's shared storage, are case-insensitive, where two
	// such files would overwrite each other.
	files := make(map[string]string, len(list))
	dirs := map[string]string{}
	for i, f := range list {
		if err := ValidPath(f.Path); err != nil {
			return err
		}
		if i > 0 && list[i-1].Path >= f.Path {
			if list[i-1].Path == f.Path {
				return mds.Errorf(mds.EINVALID, "the manifest lists file %q twice", f.Path)
			}
			return mds.Errorf(mds.EINVALID, "files must be sorted by path (bytewise); %q comes after %q", f.Path, list[i-1].Path)
		}
		if f.Size < 0 {
			return mds.Errorf(mds.EINVALID, "file %q has a negative size %d", f.Path, f.Size)
		}
		if !mds.ValidSHA256(f.SHA256) {
			return mds.Errorf(mds.EINVALID, "file %q has sha256 %q; it must be 64 lowercase hex digits", f.Path, f.SHA256)
		}
		key := fold(f.Path)
		if other, ok := files[key]; ok {
			return mds.Errorf(mds.EINVALID, "files %q and %q differ only in case; on a case-insensitive file system they are one file: rename one", other, f.Path)
		}
		files[key] = f.Path
		for j := range len(key) {
			if key[j] == '/' {
				dirs[key[:j]] = f.Path
			}
		}
	}
	// A path that is a file and, for another file, a directory cannot be
	// extracted; sorting does not put them next to each other ("a",
	// "a-b", "a/b").
	for key, p := range files {
		if other, ok := dirs[key]; ok {
			return mds.Errorf(mds.EINVALID, "file %q is also a directory holding %q; a path cannot be both", p, other)
		}
	}
	return nil
}

// fold maps s to a key that two strings share exactly when strings.EqualFold
// holds: each rune becomes the smallest of its simple case-folding orbit.
func fold(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
