package mds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds/version"
)

// The offline kind: an H5 offline package, the web resources (HTML, JS,
// CSS, images, fonts) of one H5 app that a mobile app's WebView serves from
// local storage instead of the network, for a virtual host. Like a
// hotpatch it is signed by the app team, whose key the app trusts, so a
// server that is not the team's cannot ship script. Unlike one it runs on
// every platform and on a range of installed app versions, and a device
// that holds an older version is offered a delta from it: a package is
// many megabytes and most of it unchanged from one version to the next.

// OfflineType is what an offline package is to the others.
type OfflineType string

const (
	// OfflineNormal is a package of one H5 app: its pages and what only
	// they use.
	OfflineNormal OfflineType = "normal"
	// OfflineGlobal holds resources many H5 apps share (a framework, a
	// font, a design system), served from a host of its own and installed
	// once for all the packages that require it.
	OfflineGlobal OfflineType = "global"
)

// OfflineSpec is the spec of an offline artifact: what the server read out
// of the package's signed manifest, and the package's two forms: the file
// uploaded (compressed, what a fresh device downloads) and the canonical
// form (every file stored, a function of the manifest, its signature and
// the files alone), which deltas are made between and which a device
// rebuilds from the files it installed. The artifact's version is the
// package's version; packages run on every platform the app ships on.
type OfflineSpec struct {
	Package  string      `json:"package"`
	Type     OfflineType `json:"type"`
	Host     string      `json:"host"`     // the virtual host it serves: scheme://host[:port]
	Entry    string      `json:"entry"`    // the path of its entry page on Host, /index.html
	Fallback string      `json:"fallback"` // where its files are fetched from while it is not installed
	// Requires names the global packages the package's pages load
	// resources from; a device is offered the package only with them.
	Requires []string `json:"requires,omitempty"`
	// AppVersions are the installed app versions the package works with;
	// none means every version.
	AppVersions []version.Range `json:"app_versions,omitempty"`
	Network     NetworkPolicy   `json:"network"`
	// Preload says to download the package when the app starts, rather
	// than when its host is first visited.
	Preload   bool      `json:"preload"`
	Notes     string    `json:"notes"`
	KeyID     string    `json:"key_id"`    // the team key that signed it
	SignedAt  time.Time `json:"signed_at"` // the manifest's creation time
	Files     int       `json:"files"`
	FilesSize int64     `json:"files_size"`
	SHA256    string    `json:"sha256"` // the uploaded file's
	Size      int64     `json:"size"`
	// CanonicalSHA256 and CanonicalSize are those of the canonical form:
	// what applying a delta to this version must produce.
	CanonicalSHA256 string `json:"canonical_sha256"`
	CanonicalSize   int64  `json:"canonical_size"`
}

// BlobOffline is the role of an offline package's uploaded file.
const BlobOffline = "offline"

// Bounds of offline packages.
const (
	MaxOfflineRequires = 16 // global packages one package requires
	// MaxOfflineHeld bounds the packages a device reports holding, and so
	// the packages an app may ever have: a device keeps what it installed.
	MaxOfflineHeld = 128
	MaxOfflineURL  = 1024
)

// ValidOfflinePackage checks an H5 app's package ID: 1-64 lowercase
// letters, digits, '.', '_' and '-', starting with a letter or digit.
// It runs on every check for every package the device holds, so it is a
// loop, not a regular expression.
func ValidOfflinePackage(id string) error {
	ok := len(id) >= 1 && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return Errorf(EINVALID, "offline package id %.80q must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, like shop-home", id)
	}
	return nil
}

// ValidOfflineHost checks the virtual host a package serves: an http or
// https origin (scheme, host and optional port, nothing else), lowercase,
// as WebViews report the URLs they load.
func ValidOfflineHost(host string) error {
	u, err := url.Parse(host)
	switch {
	case len(host) > MaxOfflineURL:
		return Errorf(EINVALID, "host is %d bytes; at most %d", len(host), MaxOfflineURL)
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return Errorf(EINVALID, "host %q must be an http or https origin, like https://h5.shop.example", host)
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(host, "?") || strings.HasSuffix(host, "#"):
		return Errorf(EINVALID, "host %q must be an origin only (scheme, host, port), without a path, query or fragment: the package's files give the paths", host)
	case host != strings.ToLower(host):
		return Errorf(EINVALID, "host %q must be lowercase, as WebViews report it", host)
	}
	// As a URL's origin is written: no default port, no empty or
	// zero-padded one, which no URL a WebView loads would match.
	origin := u.Scheme + "://" + u.Hostname()
	if strings.Contains(u.Hostname(), ":") {
		origin = u.Scheme + "://[" + u.Hostname() + "]"
	}
	if p := u.Port(); p != "" && !(u.Scheme == "https" && p == "443" || u.Scheme == "http" && p == "80") {
		origin += ":" + p
	}
	if n, err := strconv.Atoi(u.Port()); u.Port() != "" && (err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != u.Port()) || host != origin {
		return Errorf(EINVALID, "host %q must be an origin as URLs write it, like %s: no default, empty or zero-padded port", host, origin)
	}
	return nil
}

// ValidOfflineEntry checks the path of a package's entry page: absolute,
// without a query or fragment.
func ValidOfflineEntry(entry string) error {
	if len(entry) < 2 || entry[0] != '/' || len(entry) > MaxOfflineURL || strings.ContainsAny(entry, "?#\\") {
		return Errorf(EINVALID, "entry %q must be the path of a file of the package, starting with /, like /index.html", entry)
	}
	return nil
}

// ValidOfflineFallback checks a fallback base URL: absolute http or https,
// without a query or fragment; file paths are appended to it.
func ValidOfflineFallback(fallback string) error {
	u, err := url.Parse(fallback)
	if len(fallback) > MaxOfflineURL || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(fallback, "?#") {
		return Errorf(EINVALID, "fallback %q must be an http or https base URL without a query or fragment, like https://cdn.shop.example/h5/shop-home/", fallback)
	}
	return nil
}

// ValidOfflineRequires checks what a package of type t requires: package
// IDs, sorted, none twice, not itself, and none for a global package,
// which is shared and so stands alone. That they name global packages is
// the snapshot's to see: a device is offered a package with its required
// global packages, or not yet.
func ValidOfflineRequires(pkg string, t OfflineType, requires []string) error {
	if t == OfflineGlobal && len(requires) > 0 {
		return Errorf(EINVALID, "global package %s requires %s; a global package stands alone", pkg, strings.Join(requires, ", "))
	}
	if len(requires) > MaxOfflineRequires {
		return Errorf(EINVALID, "package %s requires %d global packages; at most %d", pkg, len(requires), MaxOfflineRequires)
	}
	for i, r := range requires {
		if err := ValidOfflinePackage(r); err != nil {
			return err
		}
		if r == pkg {
			return Errorf(EINVALID, "package %s requires itself", pkg)
		}
		if i > 0 && requires[i-1] >= r {
			return Errorf(EINVALID, "requires must be sorted and name each package once; %s comes after %s", r, requires[i-1])
		}
	}
	return nil
}

// Kind implements ArtifactSpec.
func (*OfflineSpec) Kind() Kind { return KindOffline }

// Blobs implements ArtifactSpec: the uploaded file. Deltas are blobs of
// their own, built after the package is released.
func (p *OfflineSpec) Blobs() []BlobRef {
	return []BlobRef{{Role: BlobOffline, SHA256: p.SHA256, Size: p.Size}}
}

// Validate implements ArtifactSpec.
func (p *OfflineSpec) Validate(a *Artifact) error {
	if a.Platform != "" {
		return Errorf(EINVALID, "an offline package runs on every platform of its app; give it no platform")
	}
	if err := ValidOfflinePackage(p.Package); err != nil {
		return err
	}
	switch p.Type {
	case OfflineNormal, OfflineGlobal:
	default:
		return Errorf(EINVALID, "offline package type %q is not one of normal, global", p.Type)
	}
	for _, check := range []error{ValidOfflineHost(p.Host), ValidOfflineEntry(p.Entry), ValidOfflineFallback(p.Fallback),
		ValidOfflineRequires(p.Package, p.Type, p.Requires)} {
		if check != nil {
			return check
		}
	}
	for _, r := range p.AppVersions {
		if err := r.Validate(); err != nil {
			return Errorf(EINVALID, "app_versions: %v", err)
		}
	}
	switch p.Network {
	case "":
		p.Network = NetworkAny
	case NetworkAny, NetworkWiFi:
	default:
		return Errorf(EINVALID, "network %q is not one of any, wifi", p.Network)
	}
	if err := ValidText("release notes", p.Notes, MaxNotes, true); err != nil {
		return err
	}
	if !ValidSHA256(p.KeyID) {
		return Errorf(EINVALID, "key id %q must be 64 lowercase hex digits", p.KeyID)
	}
	if !ValidSHA256(p.SHA256) || p.Size <= 0 || !ValidSHA256(p.CanonicalSHA256) || p.CanonicalSize <= 0 {
		return Errorf(EINVALID, "an offline package needs the sha256 and size of its uploaded file and of its canonical form")
	}
	if p.Files < 1 || p.FilesSize < 0 {
		return Errorf(EINVALID, "an offline package holds at least one file")
	}
	return nil
}

// WorksWith reports whether the package works with installed app version v.
func (p *OfflineSpec) WorksWith(v string) bool {
	return len(p.AppVersions) == 0 || slices.ContainsFunc(p.AppVersions, func(r version.Range) bool { return r.Contains(v) })
}

// OfflinePolicy is how an offline task behaves: like any task, through its
// targeting; the package carries its own download policy.
type OfflinePolicy struct{}

// Kind implements TaskPolicy.
func (*OfflinePolicy) Kind() Kind { return KindOffline }

// Validate implements TaskPolicy.
func (*OfflinePolicy) Validate() error { return nil }

// ValidOfflineHeld checks what a device reports holding of the offline
// kind: package ID → version.
func ValidOfflineHeld(held map[string]string) error {
	if len(held) > MaxOfflineHeld {
		return Errorf(EINVALID, "offline: %d packages sent; at most %d are accepted", len(held), MaxOfflineHeld)
	}
	for pkg, v := range held {
		if err := ValidOfflinePackage(pkg); err != nil {
			return Errorf(EINVALID, "offline: %v", err)
		}
		if err := version.Valid(v); err != nil {
			return Errorf(EINVALID, "offline: package %s: %v", pkg, err)
		}
	}
	return nil
}

// AppendHeldDigest appends to dst the digest of what a device reports
// holding of offline packages, which answers echo: the lowercase hex
// SHA-256 of held as compact JSON, keys sorted bytewise
// ({"common":"3.0.0","shop-home":"1.4.0"}). held must be valid
// (ValidOfflineHeld), so nothing in it needs escaping. It does not
// allocate beyond growing dst.
func AppendHeldDigest(dst []byte, held map[string]string) []byte {
	var keys [MaxOfflineHeld]string
	ids := keys[:0]
	for id := range held {
		if len(ids) == len(keys) {
			break // more than ValidOfflineHeld lets through
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	start := len(dst)
	dst = append(dst, '{')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(append(append(append(append(dst, '"'), id...), `":"`...), held[id]...), '"')
	}
	sum := sha256.Sum256(append(dst, '}')[start:])
	return hex.AppendEncode(dst[:start], sum[:])
}

// DeltaStatus is where a delta is in its building.
type DeltaStatus string

const (
	DeltaPending  DeltaStatus = "pending"  // waiting for a builder
	DeltaBuilding DeltaStatus = "building" // a node builds it; its lease says until when
	DeltaReady    DeltaStatus = "ready"    // built and stored: offered to devices that hold its base
	DeltaFailed   DeltaStatus = "failed"   // the build failed after its attempts; Reason says why
	// DeltaSkipped: built, but not meaningfully smaller than the full
	// package, or its versions are too large to diff within the builder's
	// memory; devices get the full package.
	DeltaSkipped DeltaStatus = "skipped"
)

// Delta is an incremental update of an offline package: the bytes that
// turn the canonical form of one version (From) into the canonical form
// of a later one (To). Deltas are built in the background once a version
// is released, from each of the last few versions released before it.
type Delta struct {
	AppID       int64       `json:"-"`
	Package     string      `json:"package"`
	From        int64       `json:"from_package_id"`
	FromVersion string      `json:"from_version"`
	To          int64       `json:"to_package_id"`
	ToVersion   string      `json:"to_version"`
	Status      DeltaStatus `json:"status"`
	SHA256      string      `json:"sha256,omitempty"`
	Size        int64       `json:"size,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	Attempts    int         `json:"attempts"`
	// Lease is when the claim of the builder building it runs out.
	Lease time.Time `json:"-"`
	// RetryAt is when a delta finished pending (a build that failed and
	// is tried again) may be claimed again; zero for at once.
	RetryAt time.Time `json:"retry_at,omitzero"`
	// BuildMillis is how long the last build took, in milliseconds.
	BuildMillis int64     `json:"build_ms"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// String names the delta for logs.
func (d *Delta) String() string {
	return fmt.Sprintf("%s %s→%s (packages %d→%d)", d.Package, d.FromVersion, d.ToVersion, d.From, d.To)
}

// DefaultDeltaBases is how many of the versions released before a new
// one it gets deltas from, and MaxDeltaBases the most it can be set to.
const (
	DefaultDeltaBases = 5
	MaxDeltaBases     = 16
)
