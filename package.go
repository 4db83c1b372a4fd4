package mds

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mds-dev/mds/version"
)

// Source says where a device fetches a package from.
type Source string

const (
	SourceBlob  Source = "blob"  // uploaded to mds and served content-addressed
	SourceURL   Source = "url"   // a file hosted elsewhere (a CDN, a build server)
	SourceStore Source = "store" // a store page: App Store, Google Play, AppGallery
)

// NetworkPolicy restricts on which networks a device downloads.
type NetworkPolicy string

const (
	NetworkAny  NetworkPolicy = "any"
	NetworkWiFi NetworkPolicy = "wifi"
)

// Package is one installable build of an app for one platform. It is
// immutable once created: a fix is a new package, so what a device was told
// about a package never changes under it.
type Package struct {
	ID       int64    `json:"id"`
	AppID    int64    `json:"app_id"`
	Platform Platform `json:"platform"`
	Version  string   `json:"version"` // version name, e.g. "2.4.0"
	Build    int64    `json:"build"`   // build number (Android versionCode, iOS CFBundleVersion); 0 if unknown
	Notes    string   `json:"notes"`   // release notes shown to the user; multi-line
	Source   Source   `json:"source"`
	SHA256   string   `json:"sha256,omitempty"` // lowercase hex; required for blob, optional for url
	Size     int64    `json:"size,omitempty"`
	URL      string   `json:"url,omitempty"`       // for url and store sources
	FileName string   `json:"file_name,omitempty"` // the uploaded file's name, for people
	// AppVersions are the installed versions that may take this package; none
	// means every older version may.
	AppVersions []version.Range `json:"app_versions,omitempty"`
	Channel     string          `json:"channel,omitempty"` // only devices of this channel; "" for all
	Network     NetworkPolicy   `json:"network"`
	Silent      bool            `json:"silent"` // download in the background without asking
	// Enterprise marks an iOS in-house build installed over the air through an
	// itms-services manifest rather than from the App Store.
	Enterprise bool      `json:"enterprise,omitempty"`
	BundleID   string    `json:"bundle_id,omitempty"` // required for enterprise builds
	Title      string    `json:"title,omitempty"`     // install prompt title for enterprise builds
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by"`
}

// MaxNotes bounds release notes; they travel in every check answer.
const MaxNotes = 8 << 10

var (
	sha256Pattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	channelPattern  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	bundleIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
)

// ValidSHA256 reports whether s is a lowercase hex sha256 digest.
func ValidSHA256(s string) bool { return sha256Pattern.MatchString(s) }

// storeSchemes are the URL schemes that open a store page on a device.
var storeSchemes = map[string]bool{"https": true, "itms-apps": true, "market": true, "appmarket": true}

// Validate checks a package as a caller describes it. It normalises what it
// safely can (defaults, whitespace) and says precisely what is wrong otherwise.
func (p *Package) Validate() error {
	if err := p.Platform.Validate(); err != nil {
		return err
	}
	if err := version.Valid(p.Version); err != nil {
		return Errorf(EINVALID, "%v", err)
	}
	if p.Build < 0 {
		return Errorf(EINVALID, "build number %d is negative", p.Build)
	}
	if len(p.Notes) > MaxNotes {
		return Errorf(EINVALID, "release notes are %d bytes; keep them under %d", len(p.Notes), MaxNotes)
	}
	for _, r := range p.AppVersions {
		if err := r.Validate(); err != nil {
			return Errorf(EINVALID, "app_versions: %v", err)
		}
	}
	if p.Channel != "" && !channelPattern.MatchString(p.Channel) {
		return Errorf(EINVALID, "channel %q must be 1-64 letters, digits or _ . -", p.Channel)
	}
	switch p.Network {
	case "":
		p.Network = NetworkAny
	case NetworkAny, NetworkWiFi:
	default:
		return Errorf(EINVALID, "network %q is not one of any, wifi", p.Network)
	}
	if p.SHA256 != "" && !ValidSHA256(p.SHA256) {
		return Errorf(EINVALID, "sha256 %q must be 64 lowercase hex digits", p.SHA256)
	}
	if p.Size < 0 {
		return Errorf(EINVALID, "size %d is negative", p.Size)
	}
	switch p.Source {
	case SourceBlob:
		if p.SHA256 == "" {
			return Errorf(EINVALID, "an uploaded package needs the sha256 that the upload returned")
		}
		if p.URL != "" {
			return Errorf(EINVALID, "an uploaded package has no url; use source \"url\" for a file hosted elsewhere")
		}
	case SourceURL:
		if err := checkURL(p.URL, map[string]bool{"https": true, "http": true}); err != nil {
			return err
		}
	case SourceStore:
		if err := checkURL(p.URL, storeSchemes); err != nil {
			return err
		}
		if p.SHA256 != "" || p.Size != 0 || p.Enterprise {
			return Errorf(EINVALID, "a store link has no sha256, size or enterprise install: the store delivers the build")
		}
		if p.Silent {
			return Errorf(EINVALID, "a store link cannot be downloaded silently: the user installs from the store")
		}
	default:
		return Errorf(EINVALID, "source %q is not one of blob, url, store", p.Source)
	}
	if p.Enterprise {
		if p.Platform != IOS {
			return Errorf(EINVALID, "enterprise over-the-air install is for ios packages only")
		}
		if !bundleIDPattern.MatchString(p.BundleID) {
			return Errorf(EINVALID, "enterprise package needs bundle_id like com.example.app, got %q", p.BundleID)
		}
	} else if p.BundleID != "" || p.Title != "" {
		return Errorf(EINVALID, "bundle_id and title apply to enterprise ios packages only; set enterprise")
	}
	p.Title = strings.TrimSpace(p.Title)
	return nil
}

func checkURL(raw string, schemes map[string]bool) error {
	if raw == "" {
		return Errorf(EINVALID, "url is required for this source")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || (u.Host == "" && u.Opaque == "" && u.RawQuery == "") {
		return Errorf(EINVALID, "url %q is not an absolute URL", raw)
	}
	if !schemes[u.Scheme] {
		names := slices.Sorted(maps.Keys(schemes))
		return Errorf(EINVALID, "url scheme %q is not allowed here; use one of %s", u.Scheme, strings.Join(names, ", "))
	}
	return nil
}
