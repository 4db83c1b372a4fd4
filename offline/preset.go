package offline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// A preset is the offline packages an app carries in its own build, so
// that a fresh install serves its H5 pages locally before it has ever
// checked: a directory of package files as the server stores them, and
// PresetFile, which lists them. mds offline export writes one; the device
// SDK installs its packages on first start, verifying each as it would a
// download, and from then on reports holding them, so that its first
// check is offered deltas rather than whole packages.

// PresetFormat is the value of a preset's format field: the name and
// revision of the preset format.
const PresetFormat = "mds-offline-preset/1"

// PresetFile is the name of the preset's list in its directory.
const PresetFile = "preset.json"

// maxPreset bounds PresetFile: MaxOfflineHeld packages of a few hundred
// bytes each fit many times over.
const maxPreset = 1 << 20

// Preset lists the packages of a preset directory, sorted by package ID,
// one version each.
type Preset struct {
	Format   string          `json:"format"`
	AppKey   string          `json:"app_key"` // the app's device key (mds.App.Key)
	Packages []PresetPackage `json:"packages"`
}

// PresetPackage is one package of a preset: which version of which
// package, the file in the preset's directory that holds it, and the
// sizes and hashes of its two forms, which the device checks the file
// against and reports after installing it.
type PresetPackage struct {
	Package   string          `json:"package"`
	Version   string          `json:"version"`
	PackageID int64           `json:"package_id"` // the server's ID of the version
	Type      mds.OfflineType `json:"type"`
	File      string          `json:"file"` // PresetFileName(Package, Version)
	Size      int64           `json:"size"`
	SHA256    string          `json:"sha256"`
	// CanonicalSize and CanonicalSHA256 are those of the canonical form,
	// what deltas from this version start from.
	CanonicalSize   int64  `json:"canonical_size"`
	CanonicalSHA256 string `json:"canonical_sha256"`
}

// PresetFileName is the name of the file of version v of package pkg in a
// preset's directory: "@" is in no package ID nor version, so no two
// packages' files share a name (as "a" 1-1 and "a-1" 1 would with "-").
func PresetFileName(pkg, v string) string { return pkg + "@" + v + ".zip" }

// Validate checks every field of p: the format, the app key, and each
// package, its version, type, sizes and hashes, and that its file is
// named PresetFileName, a plain name in the preset's directory; and that
// the packages are sorted by package ID, each once, at most
// mds.MaxOfflineHeld of them, and at least one.
func (p *Preset) Validate() error {
	if p.Format != PresetFormat {
		return mds.Errorf(mds.EINVALID, "the preset's format is %q; this version of mds reads %q only", p.Format, PresetFormat)
	}
	if p.AppKey == "" {
		return mds.Errorf(mds.EINVALID, "the preset has no app_key; give the device key of the app that carries it")
	}
	if err := mds.ValidText("app key", p.AppKey, MaxAppKey, false); err != nil {
		return err
	}
	switch n := len(p.Packages); {
	case n == 0:
		return mds.Errorf(mds.EINVALID, "the preset lists no package; export one that a task releases officially")
	case n > mds.MaxOfflineHeld:
		return mds.Errorf(mds.EINVALID, "the preset lists %d packages; a device holds at most %d", n, mds.MaxOfflineHeld)
	}
	for i := range p.Packages {
		pp := &p.Packages[i]
		if err := pp.validate(); err != nil {
			return err
		}
		if i > 0 && p.Packages[i-1].Package >= pp.Package {
			return mds.Errorf(mds.EINVALID, "the preset's packages must be sorted by package ID, each once; %s comes after %s",
				pp.Package, p.Packages[i-1].Package)
		}
	}
	return nil
}

func (pp *PresetPackage) validate() error {
	if err := mds.ValidOfflinePackage(pp.Package); err != nil {
		return err
	}
	if err := version.Valid(pp.Version); err != nil {
		return mds.Errorf(mds.EINVALID, "package %s: version: %v", pp.Package, err)
	}
	if pp.PackageID <= 0 {
		return mds.Errorf(mds.EINVALID, "package %s: package_id %d is not the ID of a package on the server", pp.Package, pp.PackageID)
	}
	switch pp.Type {
	case mds.OfflineNormal, mds.OfflineGlobal:
	default:
		return mds.Errorf(mds.EINVALID, "package %s: type %q is not one of normal, global", pp.Package, pp.Type)
	}
	if want := PresetFileName(pp.Package, pp.Version); pp.File != want {
		return mds.Errorf(mds.EINVALID, "package %s: file %q must be %q, a file in the preset's directory", pp.Package, pp.File, want)
	}
	if pp.Size <= 0 || !mds.ValidSHA256(pp.SHA256) || pp.CanonicalSize <= 0 || !mds.ValidSHA256(pp.CanonicalSHA256) {
		return mds.Errorf(mds.EINVALID, "package %s: the preset needs the size and sha256 (64 lowercase hex digits) of its file and of its canonical form", pp.Package)
	}
	return nil
}

// Encode validates p and returns what PresetFile holds.
func (p *Preset) Encode() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadPreset reads the preset in directory dir: PresetFile, which must
// hold a valid Preset and nothing else, and each file it names, which
// must be a regular file of the size it says. It reads no file's content:
// the device checks each package's hash and signature as it installs it.
func ReadPreset(dir string) (*Preset, error) {
	f, err := os.Open(filepath.Join(dir, PresetFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPreset+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPreset {
		return nil, mds.Errorf(mds.EINVALID, "%s is over %d bytes; a preset is a short list", PresetFile, maxPreset)
	}
	var p Preset
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, mds.Errorf(mds.EINVALID, "%s: %v", PresetFile, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, mds.Errorf(mds.EINVALID, "%s holds more than one JSON value", PresetFile)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	for _, pp := range p.Packages {
		st, err := os.Lstat(filepath.Join(dir, pp.File))
		switch {
		case err != nil:
			return nil, fmt.Errorf("package %s: %w", pp.Package, err)
		case !st.Mode().IsRegular():
			return nil, mds.Errorf(mds.EINVALID, "package %s: %s is not a regular file", pp.Package, pp.File)
		case st.Size() != pp.Size:
			return nil, mds.Errorf(mds.EINVALID, "package %s: %s is %d bytes; the preset says %d: export the preset again", pp.Package, pp.File, st.Size(), pp.Size)
		}
	}
	return &p, nil
}
