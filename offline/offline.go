// Package offline reads and writes H5 offline packages: the web resources
// of one H5 app (HTML, JS, CSS, images, fonts), signed by the app team,
// that a mobile app's WebView serves from local storage for a virtual
// host. A package is a bundle (package bundle) whose manifest says what
// the package is and where it is served; this package holds that
// manifest, packing and opening packages, which URL a package serves
// (Resolve), and the builder of deltas between versions (Builder).
// Everything but the builder is pure: no HTTP, no storage.
package offline

import (
	"io"
	"slices"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/version"
)

// Format is the value of every manifest's format field: the name and
// revision of this protocol.
const Format = "mds-offline/1"

// kind names offline packages in the refusals of bundle.
var kind = bundle.Format{Noun: "an offline package", Pack: "mds offline pack"}

// MaxAppKey bounds the manifest's app key, as a hotpatch's.
const MaxAppKey = 256

// Limits are those of the server and the SDK unless configured
// otherwise, and the ones Pack makes packages for: a bundle's, but with
// at most 256 MiB of files. Deltas are built between versions of at most
// delta.MaxInput bytes together; devices get larger ones whole.
var Limits = bundle.Limits{
	MaxArchive:   bundle.DefaultMaxArchive,
	MaxFiles:     bundle.DefaultLimits.MaxFiles,
	MaxFileSize:  bundle.DefaultLimits.MaxFileSize,
	MaxTotalSize: 256 << 20,
	MaxRatio:     bundle.DefaultLimits.MaxRatio,
}

// CanonicalLimits are Limits for the canonical form, every file stored:
// what a device opens after applying a delta. Its archive holds the
// files, at most Limits.MaxTotalSize, and per file two headers and two
// copies of the name, at most 2 KiB + 76 bytes each.
var CanonicalLimits = func() bundle.Limits {
	l := Limits
	l.MaxArchive = l.MaxTotalSize + int64(l.MaxFiles)*(2<<10+76) + bundle.MaxManifest + bundle.MaxSignature + 1<<10
	return l
}()

// Manifest describes an offline package: what it is, where it is served,
// what it needs, and the files it holds. Its canonical bytes are what the
// app team signs. The field order is the order of the canonical encoding;
// changing it changes the protocol.
type Manifest struct {
	Format  string          `json:"format"`
	AppKey  string          `json:"app_key"` // the app's device key (mds.App.Key)
	Package string          `json:"package"` // the H5 app's ID
	Version string          `json:"version"`
	Type    mds.OfflineType `json:"type"`
	// Host is the virtual host the package serves (an origin), and Entry
	// the path of its entry page there.
	Host  string `json:"host"`
	Entry string `json:"entry"`
	// Fallback is where a URL of Host is fetched from while the package
	// is not installed, or for a path it does not hold: the path is
	// appended to it.
	Fallback string `json:"fallback"`
	// Requires names the global packages whose resources the package's
	// pages load, sorted; absent for none.
	Requires []string `json:"requires,omitempty"`
	// AppVersions are the installed app versions the package works with;
	// absent for every one.
	AppVersions []version.Range   `json:"app_versions,omitempty"`
	Network     mds.NetworkPolicy `json:"network"`
	Preload     bool              `json:"preload"`
	Notes       string            `json:"notes"`
	CreatedAt   string            `json:"created_at"` // RFC 3339 UTC to the second
	KeyID       string            `json:"key_id"`     // signing.PublicKey.ID of the signing key
	Alg         signing.Alg       `json:"alg"`
	Files       []bundle.File     `json:"files"` // sorted by path bytewise
}

// Validate checks every field of m, in the form the canonical encoding
// has it: it sorts nothing and fills no default.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		return mds.Errorf(mds.EINVALID, "the manifest's format is %q; this version of mds reads %q only", m.Format, Format)
	}
	if m.AppKey == "" {
		return mds.Errorf(mds.EINVALID, "the manifest has no app_key; give the device key of the app the package is for")
	}
	if err := mds.ValidText("app key", m.AppKey, MaxAppKey, false); err != nil {
		return err
	}
	if err := version.Valid(m.Version); err != nil {
		return mds.Errorf(mds.EINVALID, "version: %v", err)
	}
	switch m.Type {
	case mds.OfflineNormal, mds.OfflineGlobal:
	default:
		return mds.Errorf(mds.EINVALID, "type %q is not one of normal, global", m.Type)
	}
	for _, err := range []error{mds.ValidOfflinePackage(m.Package), mds.ValidOfflineHost(m.Host), mds.ValidOfflineEntry(m.Entry),
		mds.ValidOfflineFallback(m.Fallback), mds.ValidOfflineRequires(m.Package, m.Type, m.Requires)} {
		if err != nil {
			return err
		}
	}
	for _, r := range m.AppVersions {
		if err := r.Validate(); err != nil {
			return mds.Errorf(mds.EINVALID, "app_versions: %v", err)
		}
	}
	if m.Network != mds.NetworkAny && m.Network != mds.NetworkWiFi {
		return mds.Errorf(mds.EINVALID, "network %q is not one of any, wifi", m.Network)
	}
	if err := mds.ValidText("release notes", m.Notes, mds.MaxNotes, true); err != nil {
		return err
	}
	if err := bundle.ValidStamp(m.CreatedAt); err != nil {
		return err
	}
	if !mds.ValidSHA256(m.KeyID) {
		return mds.Errorf(mds.EINVALID, "key_id %q must be 64 lowercase hex digits: the ID of the key that signs the package", m.KeyID)
	}
	if !slices.Contains(signing.Algs, m.Alg) {
		return mds.Errorf(mds.EINVALID, "alg %q is not one of %s, %s", m.Alg, signing.ECDSAP256, signing.Ed25519)
	}
	if err := bundle.ValidFiles(m.Files); err != nil {
		return err
	}
	if _, ok := m.file(m.Entry[1:]); !ok {
		return mds.Errorf(mds.EINVALID, "entry %s is not a file of the package; give the path of its entry page, like /index.html", m.Entry)
	}
	return nil
}

// file returns the file at path p, if the package holds it.
func (m *Manifest) file(p string) (bundle.File, bool) {
	i, ok := slices.BinarySearchFunc(m.Files, p, func(f bundle.File, p string) int {
		switch {
		case f.Path < p:
			return -1
		case f.Path > p:
			return 1
		}
		return 0
	})
	if !ok {
		return bundle.File{}, false
	}
	return m.Files[i], true
}

// Encode validates m and returns its canonical bytes: what the team
// signs, and what manifest.json holds.
func (m *Manifest) Encode() ([]byte, error) { return bundle.EncodeManifest(m) }

// ParseManifest reads manifest.json, in canonical form only (see
// bundle.DecodeManifest).
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := bundle.DecodeManifest(b, &m, Format, kind); err != nil {
		return nil, err
	}
	return &m, nil
}

// Created returns CreatedAt as a time; the zero time if it does not parse.
func (m *Manifest) Created() time.Time { return bundle.ParseStamp(m.CreatedAt) }

// Package is an offline package whose structure Open checked. Its
// manifest is trusted only once Verify passes, and its files once
// CheckFiles or Extract has read them.
type Package struct {
	Manifest *Manifest
	*bundle.Bundle
}

// Open checks the structure of the offline package of size bytes in r
// against lim before anything in it is trusted, as bundle.Open does, with
// manifest.json a valid Manifest in canonical form. It reads no file's
// content.
func Open(r io.ReaderAt, size int64, lim bundle.Limits) (*Package, error) {
	var m *Manifest
	b, err := bundle.Open(r, size, kind, lim, func(mb []byte) ([]bundle.File, error) {
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
// the manifest names.
func (p *Package) Verify(pub *signing.PublicKey) error {
	return p.Bundle.Verify(pub, p.Manifest.KeyID, p.Manifest.Alg)
}

// Pack makes an offline package of the files under directory src, signed
// with key, and writes it to w, within Limits. From m it takes the app
// key, package ID, version, type, host, entry, fallback, requires (which
// it sorts), app versions, network (any when empty), preload and notes;
// it fills in format, files, key ID, algorithm and created_at (now, to
// the second). Packing the same files at the same now writes the same
// bytes. On error, what reached w is not a package. It returns the
// manifest it signed.
func Pack(w io.Writer, m Manifest, src string, key *signing.PrivateKey, now time.Time) (*Manifest, error) {
	m.Format = Format
	m.Requires = slices.Sorted(slices.Values(m.Requires))
	if len(m.Requires) == 0 {
		m.Requires = nil
	}
	if len(m.AppVersions) == 0 {
		m.AppVersions = nil
	}
	if m.Network == "" {
		m.Network = mds.NetworkAny
	}
	m.CreatedAt = bundle.Stamp(now)
	err := bundle.Pack(w, kind, src, key, Limits, func(files []bundle.File) ([]byte, error) {
		pub := key.Public()
		m.KeyID, m.Alg, m.Files = pub.ID(), pub.Alg(), files
		return m.Encode()
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Spec returns the spec of the package whose manifest is m: uploaded as
// a file of size bytes hashing to sum, whose canonical form is
// canonicalSize bytes hashing to canonicalSum.
func (m *Manifest) Spec(sum string, size int64, canonicalSum string, canonicalSize int64) *mds.OfflineSpec {
	return &mds.OfflineSpec{Package: m.Package, Type: m.Type, Host: m.Host, Entry: m.Entry, Fallback: m.Fallback,
		Requires: m.Requires, AppVersions: m.AppVersions, Network: m.Network, Preload: m.Preload, Notes: m.Notes,
		KeyID: m.KeyID, SignedAt: m.Created(), Files: len(m.Files), FilesSize: bundle.TotalSize(m.Files),
		SHA256: sum, Size: size, CanonicalSHA256: canonicalSum, CanonicalSize: canonicalSize}
}
