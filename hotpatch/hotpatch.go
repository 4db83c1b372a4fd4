// Package hotpatch reads and writes hotpatch files: an app team's signed
// set of files (opaque bytes to mds) that patches exact installed versions
// of one app on one platform. The server validates a hotpatch on upload,
// and the device SDK validates it again and extracts it. Everything here
// is pure: no HTTP, no storage.
//
// A hotpatch is a bundle (package bundle) whose manifest.json is a
// Manifest: the archive, its layout, its limits and its checks are
// bundle's, and this package adds what a hotpatch's manifest says and
// requires. Readers in other languages implement the same rules;
// docs/protocol.md states them.
package hotpatch

import (
	"io"
	"slices"
	"time"

	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/signing"
)

// kind names hotpatches in bundle's refusals.
var kind = bundle.Format{Noun: "a hotpatch", Pack: "mds hotpatch pack"}

// Entry names of the archive.
const (
	ManifestName  = bundle.ManifestName
	SignatureName = bundle.SignatureName
	FilesPrefix   = bundle.FilesPrefix // + File.Path
)

// MaxSignature bounds manifest.sig.
const MaxSignature = bundle.MaxSignature

// Bounds of file paths.
const (
	MaxPath    = bundle.MaxPath
	MaxSegment = bundle.MaxSegment
)

// Sentinels that the SDK branches on with errors.Is: bundle's, which the
// errors of this package match. The errors that match them are
// *mds.Error values of code EINVALID too.
var (
	ErrBadSignature = bundle.ErrBadSignature
	ErrWrongKey     = bundle.ErrWrongKey
	ErrCorrupt      = bundle.ErrCorrupt
)

// Limits bound what Open accepts: bundle's.
type Limits = bundle.Limits

// DefaultMaxArchive is the size of the largest hotpatch file, compressed,
// as uploaded, downloaded and opened: bundle's, 512 MiB.
const DefaultMaxArchive = bundle.DefaultMaxArchive

// DefaultLimits are the limits of the server and the SDK unless configured
// otherwise, and the ones Pack makes hotpatches for: bundle's.
var DefaultLimits = bundle.DefaultLimits

// ValidPath checks the path of a file in a hotpatch, as bundle.ValidPath.
func ValidPath(p string) error { return bundle.ValidPath(p) }

// Package is a hotpatch whose structure Open checked. Its manifest is
// trusted only once Verify passes, and its files once CheckFiles or
// Extract has read them. The embedded bundle holds manifest.json's bytes
// (ManifestBytes), manifest.sig (Signature) and the files, and does what
// a hotpatch does as any bundle: CheckFiles, Extract, WriteCanonical.
type Package struct {
	Manifest *Manifest
	*bundle.Bundle
}

// Open checks the structure of the hotpatch of size bytes in r against
// lim before anything in it is trusted, as bundle.Open does, with
// manifest.json a valid Manifest in canonical form. It reads no file's
// content. Refusals are EINVALID errors; an error of r itself is returned
// wrapped.
func Open(r io.ReaderAt, size int64, lim Limits) (*Package, error) {
	var m *Manifest
	b, err := bundle.Open(r, size, kind, lim, func(mb []byte) ([]File, error) {
		var err error
		if m, err = ParseManifest(mb); err != nil {
			return nil, err
		}
		return m.Files, nil
	})
	if err != nil {
		return nil, err
	}
	return &Package{Manifest: m, Bundle: b}, nil
}

// Verify checks that pub signed the package's manifest, and is the key
// the manifest names. It says nothing of the files: CheckFiles and
// Extract hold them to the manifest.
func (p *Package) Verify(pub *signing.PublicKey) error {
	return p.Bundle.Verify(pub, p.Manifest.KeyID, p.Manifest.Alg)
}

// Pack makes a hotpatch of the files in src, signed with key, and writes
// it to w, as bundle.Pack does within DefaultLimits: src is a directory,
// every regular file under which becomes a file of the package at its
// path relative to src, or a single regular file, packed under its base
// name. From m it takes the app key, platform, targets (which it sorts),
// patch version and notes; it fills in the rest: format, files, key ID,
// algorithm and created_at (now, to the second). Packing the same files
// at the same now writes the same bytes. On error, what reached w is not
// a package. It returns the manifest it signed.
func Pack(w io.Writer, m Manifest, src string, key *signing.PrivateKey, now time.Time) (*Manifest, error) {
	m.Format = Format
	m.Targets = slices.Clone(m.Targets)
	slices.SortFunc(m.Targets, compareTargets)
	m.CreatedAt = bundle.Stamp(now)
	err := bundle.Pack(w, kind, src, key, DefaultLimits, func(files []File) ([]byte, error) {
		// bundle.Pack checked that there is a key.
		pub := key.Public()
		m.KeyID, m.Alg, m.Files = pub.ID(), pub.Alg(), files
		return m.Encode()
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}
