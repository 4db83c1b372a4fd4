package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/delta"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/version"
)

// H5 offline packages on the device. Each package ID has one installed
// version, the current one, whose files a WebView is served from
// (Resolve), and the one before it, kept until the next install of the
// package, so that a page that loaded the old files keeps finding them.
// An install writes the new version into a directory of its own, syncs
// it, and only then names it in the state: a crash at any moment leaves
// the old version current and whole.
//
// A version is installed from a delta when the answer offers one from the
// version held: the device rebuilds that version's canonical form from
// its files (checking it is the one recorded when it was installed),
// applies the delta, and checks the result's SHA-256 against the answer
// before it trusts anything in it; then, as for a full package, the team
// signature, the manifest (this app, this package and version) and every
// file. A delta that fails any of this is set aside and the full package
// downloaded instead.

// OfflineInstruction is one offline package an answer offers: the
// version to hold, the full package, and perhaps the delta from the
// version the device holds. See docs/protocol.md.
type OfflineInstruction struct {
	Package         string `json:"package"`
	Version         string `json:"version"`
	Type            string `json:"type"` // normal or global
	TaskID          int64  `json:"task_id"`
	Stage           string `json:"stage"`
	PackageID       int64  `json:"package_id"`
	URL             string `json:"url"`
	Size            int64  `json:"size"`
	SHA256          string `json:"sha256"`
	CanonicalSize   int64  `json:"canonical_size"`
	CanonicalSHA256 string `json:"canonical_sha256"`
	KeyID           string `json:"key_id"`
	Network         string `json:"network"` // any or wifi
	Preload         bool   `json:"preload"`
	// Requires names the global packages its pages load resources from.
	Requires []string      `json:"requires,omitempty"`
	Delta    *OfflineDelta `json:"delta,omitempty"`
}

// OfflineDelta is the delta an answer offers from the version the device
// holds.
type OfflineDelta struct {
	From   string `json:"from"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// offlineRecord is an installed version of an offline package. Dir is
// offline/<package>/<version>, holding manifest.json, manifest.sig and
// files/; Canonical is the SHA-256 of its canonical form, computed when it
// was installed, which a delta from it must be made for.
type offlineRecord struct {
	Package   string         `json:"package"`
	Version   string         `json:"version"`
	PackageID int64          `json:"package_id"`
	Dir       string         `json:"dir"`
	Canonical string         `json:"canonical_sha256"`
	Previous  *offlineRecord `json:"previous,omitempty"`
}

// offlineDir is where version v of package p is installed.
func offlineDir(p, v string) string { return offlineRoot + "/" + p + "/" + v }

func (r *offlineRecord) valid() bool {
	return r != nil && mds.ValidOfflinePackage(r.Package) == nil && version.Valid(r.Version) == nil &&
		r.Dir == offlineDir(r.Package, r.Version) && mds.ValidSHA256(r.Canonical) &&
		(r.Previous == nil || r.Previous.Previous == nil && r.Previous.Package == r.Package && r.Previous.valid())
}

func (r *offlineRecord) clone() *offlineRecord {
	if r == nil {
		return nil
	}
	n := *r
	n.Previous = r.Previous.clone()
	return &n
}

// OfflinePackage is an installed offline package as an app sees it.
type OfflinePackage struct {
	Package   string `json:"package"`
	Version   string `json:"version"`
	PackageID int64  `json:"package_id"`
	// Dir is the root of its files: the file at path p of the package is
	// Dir/p.
	Dir string `json:"dir"`
	// Previous is the version before, kept until the next install.
	Previous string `json:"previous,omitempty"`
}

// OfflineResult is what InstallOffline did with one package.
type OfflineResult struct {
	Package string `json:"package"`
	Version string `json:"version"`
	From    string `json:"from,omitempty"` // the version held before; "" for none
	// How is delta, full, or skipped (the network policy or the options
	// left it for later).
	How string `json:"how"`
	// Bytes is what was downloaded for it.
	Bytes int64 `json:"bytes"`
	// DeltaError says why a delta offered was not used, and the full
	// package was downloaded instead.
	DeltaError string `json:"delta_error,omitempty"`
	// WaitsFor names the global package a skipped package requires and
	// the device neither holds nor could install now.
	WaitsFor string `json:"waits_for,omitempty"`
	// Err is why the package was not installed; Error says the same.
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
}

// How a package was installed.
const (
	InstalledByDelta = "delta"
	InstalledInFull  = "full"
	InstallSkipped   = "skipped"
)

// OfflineOptions say which of an answer's offline packages to install now.
type OfflineOptions struct {
	// WiFi: the device is on Wi-Fi, so packages to download only on Wi-Fi
	// are installed too.
	WiFi bool
	// Packages, if any, are the only package IDs to install (say, the
	// preloaded ones at start, or the one whose host a WebView is about
	// to open), with the global packages they require.
	Packages []string
}

// InstallOffline installs the offline packages answer a offers, global
// packages first, each on its own: one that fails is reported in its
// result and leaves the version held before as it was. It returns an
// error only when it could install none for a reason that is not one
// package's (the answer is not this device's, or stale).
func (c *Client) InstallOffline(ctx context.Context, a *Answer, opt OfflineOptions) ([]OfflineResult, error) {
	c.install.Lock()
	defer c.install.Unlock()
	if err := c.follows(a, mds.KindOffline); err != nil {
		return nil, err
	}
	list := slices.Clone(a.Offline)
	// Globals first: a page of a package may load a global's resources
	// as soon as it is installed.
	slices.SortStableFunc(list, func(x, y OfflineInstruction) int {
		return boolRank(x.Type != string(mds.OfflineGlobal)) - boolRank(y.Type != string(mds.OfflineGlobal))
	})
	wanted := func(p string) bool { return len(opt.Packages) == 0 || slices.Contains(opt.Packages, p) }
	var out []OfflineResult
	waits := map[string]bool{} // globals offered, neither held nor installed in this pass
	for i := range list {
		in := &list[i]
		res := OfflineResult{Package: in.Package, Version: in.Version, How: InstallSkipped}
		required := slices.ContainsFunc(list, func(o OfflineInstruction) bool { return wanted(o.Package) && slices.Contains(o.Requires, in.Package) })
		missing := slices.IndexFunc(in.Requires, func(r string) bool { return waits[r] })
		switch {
		case !wanted(in.Package) && !required:
		case in.Network == string(mds.NetworkWiFi) && !opt.WiFi:
		case missing >= 0:
			// The server offers a package with the globals it needs;
			// without them its pages would load what is not there.
			res.WaitsFor = in.Requires[missing]
		default:
			res = c.installOne(ctx, in)
		}
		if res.How != InstalledByDelta && res.How != InstalledInFull && !c.holds(in.Package) {
			waits[in.Package] = true
		}
		res.setError()
		out = append(out, res)
	}
	return out, nil
}

// holds reports whether the device holds a version of package pkg.
func (c *Client) holds(pkg string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Offline[pkg] != nil
}

// setError copies Err into Error, for those who read results as JSON.
func (r *OfflineResult) setError() {
	if r.Err != nil {
		r.Error = r.Err.Error()
	}
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// follows checks that a is an answer Check returned for the device's
// state now, as the section of kind depends on it, and still stands.
func (c *Client) follows(a *Answer, kind mds.Kind) error {
	if a == nil || !a.verified {
		return refusal(ErrUntrustedAnswer, "only answers that Check returned are followed")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	dev := c.cfg.Device
	dev.Hotpatch, dev.Offline = c.reported(), c.held()
	want := boundTo(&dev)
	// Each kind's section depends on the installed app and on what the
	// device holds of that kind alone: following one kind does not stale
	// the answer for the other.
	got := a.Device
	switch kind {
	case mds.KindHotpatch:
		got.Offline = want.Offline
	case mds.KindOffline:
		got.Hotpatch = want.Hotpatch
	}
	if !got.equal(&want) {
		return refusal(ErrNotForDevice, "the answer was computed for %s, and the device is %s now: check again", &a.Device, &want)
	}
	if s := c.st.Answer; s != nil && a.Version < s.Version {
		return refusal(ErrReplay, "the answer is version %d, and version %d was accepted since: check again", a.Version, s.Version)
	}
	if !a.Expires.After(c.now()) {
		return refusal(ErrExpired, "the answer expired at %s: check again", a.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// held is what a check reports of offline packages: the version of each
// installed, nil for none. The caller holds mu.
func (c *Client) held() map[string]string {
	if len(c.st.Offline) == 0 {
		return nil
	}
	m := make(map[string]string, len(c.st.Offline))
	for p, r := range c.st.Offline {
		m[p] = r.Version
	}
	return m
}

// installOne installs the version in offers, by its delta when it can.
// The caller holds install.
func (c *Client) installOne(ctx context.Context, in *OfflineInstruction) OfflineResult {
	res := OfflineResult{Package: in.Package, Version: in.Version}
	fail := func(err error) OfflineResult { res.Err = err; return res }
	if err := mds.ValidOfflinePackage(in.Package); err != nil {
		return fail(refusal(ErrMalformedAnswer, "offline package %q: %s", in.Package, mds.ErrorMessage(err)))
	}
	if err := version.Valid(in.Version); err != nil {
		return fail(refusal(ErrMalformedAnswer, "offline package %s version %q: %v", in.Package, in.Version, err))
	}
	c.mu.Lock()
	held := c.st.Offline[in.Package].clone()
	c.mu.Unlock()
	if held != nil {
		res.From = held.Version
		if version.Compare(in.Version, held.Version) <= 0 {
			return fail(refusal(ErrDowngrade, "the answer offers %s %s, and the device holds %s: a device only moves forward", in.Package, in.Version, held.Version))
		}
	}
	if in.KeyID != "" && c.teamKeys[in.KeyID] == nil {
		return fail(refusal(ErrUnknownTeamKey, "the answer says %s %s is signed by key %s, which this build does not trust", in.Package, in.Version, in.KeyID))
	}
	var placed string
	if d := in.Delta; d != nil && held != nil && d.From == held.Version {
		var n int64
		var err error
		placed, n, err = c.viaDelta(ctx, in, held)
		res.Bytes += n
		switch {
		case err == nil:
			res.How = InstalledByDelta
		case !deltaAtFault(err):
			// The network or the device failed, not the delta: a
			// download cut short is kept, and the next install resumes
			// it.
			return fail(err)
		default:
			res.DeltaError = err.Error()
		}
	}
	if placed == "" {
		var n int64
		var err error
		placed, n, err = c.viaFull(ctx, in)
		res.Bytes += n
		if err != nil {
			return fail(err)
		}
		res.How = InstalledInFull
	}
	canonical := "" // verified by the delta, or to be computed
	if res.How == InstalledByDelta {
		canonical = in.CanonicalSHA256
	}
	if err := c.commitOffline(placed, canonical, in, held); err != nil {
		return fail(err)
	}
	return res
}

// deltaAtFault reports whether err, of installing by a delta, is the
// delta's or its answer's: then the whole package is worth downloading
// now. A transfer that failed, or a device that could not write, is
// tried again later instead: on a bad network, a delta resumed is far
// less than a package.
func deltaAtFault(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		return !se.Retryable()
	}
	return errors.Is(err, ErrBadDelta) || errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrTooLong) ||
		errors.Is(err, ErrMalformedAnswer) || errors.Is(err, ErrBadOffline) || errors.Is(err, ErrUnknownTeamKey) ||
		errors.Is(err, ErrBadPatchSignature)
}

// viaDelta installs in from its delta on held into a temporary
// directory, returning it and how many bytes were downloaded.
func (c *Client) viaDelta(ctx context.Context, in *OfflineInstruction, held *offlineRecord) (string, int64, error) {
	d := in.Delta
	if !mds.ValidSHA256(in.CanonicalSHA256) || in.CanonicalSize <= 0 || in.CanonicalSize > offline.CanonicalLimits.MaxArchive {
		return "", 0, refusal(ErrMalformedAnswer, "the answer names no valid canonical form of %s %s to apply the delta to", in.Package, in.Version)
	}
	base, err := c.canonicalOf(held)
	if err != nil {
		return "", 0, err
	}
	path, err := c.download(ctx, remote{what: "delta", URL: d.URL, SHA256: d.SHA256, Size: d.Size, Max: c.maxPatch})
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(path) // a delta is of no use once applied, or refused
	patch, err := os.Open(path)
	if err != nil {
		return "", d.Size, err
	}
	defer patch.Close()
	out := c.path(downloadsDir + "/" + in.CanonicalSHA256 + ".canonical")
	f, err := os.OpenFile(out, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", d.Size, err
	}
	defer os.Remove(out)
	defer f.Close()
	h := sha256.New()
	n, err := delta.Apply(io.MultiWriter(f, h), base, patch, in.CanonicalSize)
	switch {
	case errors.Is(err, delta.ErrWrongBase):
		return "", d.Size, refusal(ErrBadDelta, "the delta is for another version than the %s %s this device holds", in.Package, held.Version)
	case err != nil && (errors.Is(err, delta.ErrCorrupt) || errors.Is(err, delta.ErrTooLarge)):
		return "", d.Size, refusal(ErrBadDelta, "the delta to %s %s: %v", in.Package, in.Version, err)
	case err != nil:
		return "", d.Size, fmt.Errorf("sdk: applying the delta to %s %s: %w", in.Package, in.Version, err)
	case n != in.CanonicalSize || hex.EncodeToString(h.Sum(nil)) != in.CanonicalSHA256:
		return "", d.Size, refusal(ErrBadDelta, "the delta makes %d bytes hashing to %x, not the %d bytes hashing to %s the answer names", n, h.Sum(nil), in.CanonicalSize, in.CanonicalSHA256)
	}
	tmp, err := c.extractOffline(f, n, in, offline.CanonicalLimits)
	return tmp, d.Size, err
}

// viaFull installs in from its full package into a temporary directory,
// returning it and how many bytes were downloaded.
func (c *Client) viaFull(ctx context.Context, in *OfflineInstruction) (string, int64, error) {
	path, err := c.download(ctx, remote{what: "offline package", URL: in.URL, SHA256: in.SHA256, Size: in.Size, Max: c.maxPatch})
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(path)
	tmp, err := c.extractFile(path, in)
	return tmp, in.Size, err
}

// extractFile extracts the package file at path, checking first that it
// is in's size and SHA-256 (a download was, but storage can fail; a
// preset's file is checked here for the first time).
func (c *Client) extractFile(path string, in *OfflineInstruction) (string, error) {
	switch ok, err := fileMatches(path, in.Size, in.SHA256); {
	case err != nil:
		return "", err
	case !ok:
		return "", refusal(ErrHashMismatch, "%s is not the %d bytes hashing to %s that %s %s is", path, in.Size, in.SHA256, in.Package, in.Version)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return c.extractOffline(f, in.Size, in, offline.Limits)
}

// InstallPreset installs the offline packages of the preset in dir (as
// mds offline export writes it, and an app carries in its build) that the
// device does not hold at that version or a newer one, global ones first:
// each checked as a download is (size, SHA-256, archive, team signature,
// manifest, files), so that a preset is no easier a way in than the
// network. Call it at the first start of a fresh install, before the
// first check, which then reports the packages and is offered deltas
// from them.
func (c *Client) InstallPreset(dir string) ([]OfflineResult, error) {
	p, err := offline.ReadPreset(dir)
	if err != nil {
		return nil, fmt.Errorf("sdk: the preset in %s: %w", dir, err)
	}
	if p.AppKey != c.cfg.Device.AppKey {
		return nil, refusal(ErrBadOffline, "the preset in %s is for app %s; this app is %s", dir, p.AppKey, c.cfg.Device.AppKey)
	}
	c.install.Lock()
	defer c.install.Unlock()
	list := slices.Clone(p.Packages)
	slices.SortStableFunc(list, func(x, y offline.PresetPackage) int {
		return boolRank(x.Type != mds.OfflineGlobal) - boolRank(y.Type != mds.OfflineGlobal)
	})
	var out []OfflineResult
	for _, pp := range list {
		in := &OfflineInstruction{Package: pp.Package, Version: pp.Version, Type: string(pp.Type), PackageID: pp.PackageID,
			Size: pp.Size, SHA256: pp.SHA256, CanonicalSize: pp.CanonicalSize, CanonicalSHA256: pp.CanonicalSHA256}
		res := OfflineResult{Package: pp.Package, Version: pp.Version, How: InstallSkipped}
		c.mu.Lock()
		held := c.st.Offline[pp.Package].clone()
		c.mu.Unlock()
		if held != nil && version.Compare(held.Version, pp.Version) >= 0 {
			out = append(out, res)
			continue
		}
		res.How = InstalledInFull
		tmp, err := c.extractFile(filepath.Join(dir, pp.File), in)
		if err == nil {
			err = c.commitOffline(tmp, "", in, held)
		}
		res.Err = err
		res.setError()
		out = append(out, res)
	}
	return out, nil
}

// canonicalOf rebuilds the canonical form of installed version r from
// its files, and checks it is the one recorded when r was installed: a
// damaged file would otherwise make a delta fail, or worse.
func (c *Client) canonicalOf(r *offlineRecord) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeCanonical(&buf, c.path(r.Dir)); err != nil {
		return nil, refusal(ErrBadDelta, "the installed files of %s %s do not rebuild it: %v", r.Package, r.Version, err)
	}
	if sum := sha256.Sum256(buf.Bytes()); hex.EncodeToString(sum[:]) != r.Canonical {
		return nil, refusal(ErrBadDelta, "the installed files of %s %s are not those installed", r.Package, r.Version)
	}
	return buf.Bytes(), nil
}

// writeCanonical writes the canonical form of the version installed in
// dir (manifest.json, manifest.sig and files/) to w, checking every file
// against the manifest.
func writeCanonical(w io.Writer, dir string) error {
	mb, err := os.ReadFile(filepath.Join(dir, bundle.ManifestName))
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(filepath.Join(dir, bundle.SignatureName))
	if err != nil {
		return err
	}
	m, err := offline.ParseManifest(mb)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(filepath.Join(dir, "files"))
	if err != nil {
		return err
	}
	defer root.Close()
	if buf, ok := w.(*bytes.Buffer); ok {
		buf.Grow(int(bundle.CanonicalSize(len(mb), len(sig), m.Files)))
	}
	_, err = bundle.WriteCanonical(w, mb, sig, m.Files, func(p string) (io.ReadCloser, error) { return root.Open(filepath.FromSlash(p)) })
	return err
}

// extractOffline checks the package of size bytes in f, which the answer
// in names, and extracts it into a new temporary directory under its
// package's, returning the directory: the archive within lim, the team
// key and signature, the manifest (this app, in's package, version and
// type), every file. The directory holds manifest.json, manifest.sig and
// files/, and is synced.
func (c *Client) extractOffline(f *os.File, size int64, in *OfflineInstruction, lim bundle.Limits) (string, error) {
	pkg, err := offline.Open(f, size, lim)
	if err != nil {
		return "", refusal(ErrBadOffline, "%s %s: %v", in.Package, in.Version, err)
	}
	m := pkg.Manifest
	pub := c.teamKeys[m.KeyID]
	if pub == nil {
		return "", refusal(ErrUnknownTeamKey, "%s %s is signed by key %s, which this build does not trust", in.Package, in.Version, m.KeyID)
	}
	if err := pkg.Verify(pub); err != nil {
		return "", fmt.Errorf("%w: %s %s: %w", ErrBadPatchSignature, in.Package, in.Version, err)
	}
	if m.AppKey != c.cfg.Device.AppKey || m.Package != in.Package || m.Version != in.Version || string(m.Type) != in.Type {
		return "", refusal(ErrBadOffline, "the signed package is %s %s (%s) of app %s; the answer offers %s %s (%s) of this app %s",
			m.Package, m.Version, m.Type, m.AppKey, in.Package, in.Version, in.Type, c.cfg.Device.AppKey)
	}
	parent := c.path(offlineRoot + "/" + in.Package)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix+in.Version+"-")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	files := filepath.Join(tmp, "files")
	if err := os.Mkdir(files, 0o700); err != nil {
		return "", err
	}
	if err := pkg.Extract(files); err != nil {
		if mds.ErrorCode(err) == mds.EINVALID {
			return "", fmt.Errorf("%w: %s %s: %w", ErrBadOffline, in.Package, in.Version, err)
		}
		return "", err
	}
	for name, b := range map[string][]byte{bundle.ManifestName: pkg.ManifestBytes, bundle.SignatureName: pkg.Signature} {
		if err := atomicfile.WriteFile(filepath.Join(tmp, name), b, 0o600); err != nil {
			return "", err
		}
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return "", err
	}
	ok = true
	return tmp, nil
}

// commitOffline makes the version extracted into tmp, whose canonical
// form hashes to canonical ("" to compute it), the current one of its
// package, and the version held before it the previous one: the
// directory is renamed into place and synced before the state names it,
// and the versions the state no longer names are removed after.
func (c *Client) commitOffline(tmp, canonical string, in *OfflineInstruction, held *offlineRecord) error {
	defer os.RemoveAll(tmp) // gone once renamed
	if canonical == "" {
		var err error
		if canonical, err = canonicalSum(tmp); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.st.Offline[in.Package]; !(cur == nil && held == nil || cur != nil && held != nil && cur.Version == held.Version) {
		return fmt.Errorf("sdk: %s changed while it was being installed; install again", in.Package)
	}
	rec := &offlineRecord{Package: in.Package, Version: in.Version, PackageID: in.PackageID, Dir: offlineDir(in.Package, in.Version),
		Canonical: canonical}
	if held != nil {
		rec.Previous = &offlineRecord{Package: held.Package, Version: held.Version, PackageID: held.PackageID, Dir: held.Dir, Canonical: held.Canonical}
	}
	final := c.path(rec.Dir)
	if err := os.RemoveAll(final); err != nil { // a leftover no state names
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("sdk: installing %s %s: %w", in.Package, in.Version, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	next := c.st.clone()
	if next.Offline == nil {
		next.Offline = map[string]*offlineRecord{}
	}
	next.Offline[in.Package] = rec
	if err := c.commit(next); err != nil {
		return err
	}
	c.pruneOffline()
	return nil
}

// canonicalSum is the SHA-256 of the canonical form of the version
// extracted in dir, whose files were checked as they were extracted.
func canonicalSum(dir string) (string, error) {
	h := sha256.New()
	if err := writeCanonical(h, dir); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// pruneOffline removes what the state does not name under offline/:
// temporary extractions, versions installed before a crash let them be
// named, versions two installs old, packages no longer held. Failing to is
// harmless, and retried by the next install and by Open. The caller holds
// mu.
func (c *Client) pruneOffline() error {
	pkgs, err := os.ReadDir(c.path(offlineRoot))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for dir := range c.manifests {
		if !c.names(dir) {
			delete(c.manifests, dir)
		}
	}
	for _, p := range pkgs {
		rec := c.st.Offline[p.Name()]
		if rec == nil {
			if err := os.RemoveAll(c.path(offlineRoot + "/" + p.Name())); err != nil {
				return err
			}
			continue
		}
		keep := map[string]bool{rec.Version: true}
		if rec.Previous != nil {
			keep[rec.Previous.Version] = true
		}
		versions, err := os.ReadDir(c.path(offlineRoot + "/" + p.Name()))
		if err != nil {
			return err
		}
		for _, v := range versions {
			if !keep[v.Name()] {
				if err := os.RemoveAll(c.path(offlineRoot + "/" + p.Name() + "/" + v.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// names reports whether the state names offline version directory dir.
// The caller holds mu.
func (c *Client) names(dir string) bool {
	for _, r := range c.st.Offline {
		if r.Dir == dir || r.Previous != nil && r.Previous.Dir == dir {
			return true
		}
	}
	return false
}

// Offline returns the installed offline packages, by package ID.
func (c *Client) Offline() []OfflinePackage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []OfflinePackage
	for _, r := range c.st.Offline {
		p := OfflinePackage{Package: r.Package, Version: r.Version, PackageID: r.PackageID, Dir: c.path(r.Dir + "/files")}
		if r.Previous != nil {
			p.Previous = r.Previous.Version
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b OfflinePackage) int { return strings.Compare(a.Package, b.Package) })
	return out
}

// Resolution is how a URL a WebView loads is served.
type Resolution struct {
	// Package is the installed package whose host the URL is on; "" when
	// it is on no installed package's host: load it from the network.
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	// File is the local file that serves it, "" when the package does not
	// hold it: then load Fallback.
	File     string `json:"file,omitempty"`
	Fallback string `json:"fallback,omitempty"`
}

// Resolve says how a WebView's interceptor serves raw, a URL the page
// loads: from a local file of the installed package whose host it is on
// (of its current version, or of the one before, kept for pages that
// loaded it), or, for a path neither holds, from the package's fallback;
// a URL on no installed package's host is the network's. So a file a new
// version drops is served from the version before until the next
// install: a page that loaded the old version may still ask for it.
func (c *Client) Resolve(raw string) (Resolution, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return Resolution{}, fmt.Errorf("sdk: %q is not an absolute URL", raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// One host is one package's (the server sees to it); in package order
	// all the same, so that what a URL resolves to never depends on a
	// map's order.
	for _, id := range slices.Sorted(maps.Keys(c.st.Offline)) {
		r := c.st.Offline[id]
		m, err := c.manifestOf(r)
		if err != nil {
			return Resolution{}, err
		}
		file, fallback, mine := m.Resolve(u)
		if !mine {
			continue
		}
		res := Resolution{Package: r.Package, Version: r.Version, Fallback: fallback}
		if file != "" {
			res.File = filepath.Join(c.path(r.Dir), "files", filepath.FromSlash(file))
			return res, nil
		}
		// A page of the version before may still load a file only it
		// has (a chunk named by its hash, say): it is kept for that.
		if p := r.Previous; p != nil {
			if pm, err := c.manifestOf(p); err == nil {
				if file, _, _ := pm.Resolve(u); file != "" {
					res.Version, res.Fallback = p.Version, ""
					res.File = filepath.Join(c.path(p.Dir), "files", filepath.FromSlash(file))
				}
			}
		}
		return res, nil
	}
	return Resolution{}, nil
}

// manifestOf returns the manifest of installed version r, parsed once.
// The caller holds mu.
func (c *Client) manifestOf(r *offlineRecord) (*offline.Manifest, error) {
	if m := c.manifests[r.Dir]; m != nil {
		return m, nil
	}
	mb, err := os.ReadFile(filepath.Join(c.path(r.Dir), bundle.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("sdk: reading the manifest of %s %s: %w", r.Package, r.Version, err)
	}
	m, err := offline.ParseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("sdk: the manifest of %s %s: %w", r.Package, r.Version, err)
	}
	if c.manifests == nil {
		c.manifests = map[string]*offline.Manifest{}
	}
	c.manifests[r.Dir] = m
	return m, nil
}
