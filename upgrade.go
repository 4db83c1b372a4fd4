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

// UpgradeSpec is the spec of an upgrade artifact ("package"): one
// installable build of an app for one platform, uploaded, hosted elsewhere,
// or a store page.
type UpgradeSpec struct {
	Build  int64  `json:"build"` // build number (Android versionCode, iOS CFBundleVersion); 0 if unknown
	Notes  string `json:"notes"` // release notes shown to the user; multi-line
	Source Source `json:"source"`
	// SHA256 and Size describe the file: the uploaded blob, or, optionally,
	// a file hosted elsewhere so that devices can verify their download.
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size,omitempty"`
	URL      string `json:"url,omitempty"`       // for url and store sources
	FileName string `json:"file_name,omitempty"` // the uploaded file's name, for people
	// AppVersions are the installed versions that may take this package; none
	// means every older version may.
	AppVersions []version.Range `json:"app_versions,omitempty"`
	Channel     string          `json:"channel,omitempty"` // only devices of this channel; "" for all
	Network     NetworkPolicy   `json:"network"`
	Silent      bool            `json:"silent"` // download in the background without asking
	// Enterprise marks an iOS in-house build installed over the air through an
	// itms-services manifest rather than from the App Store.
	Enterprise bool   `json:"enterprise,omitempty"`
	BundleID   string `json:"bundle_id,omitempty"` // required for enterprise builds
	Title      string `json:"title,omitempty"`     // install prompt title for enterprise builds
}

// BlobPackage is the role of an upgrade's uploaded file.
const BlobPackage = "package"

// Kind implements ArtifactSpec.
func (*UpgradeSpec) Kind() Kind { return KindUpgrade }

// Blobs implements ArtifactSpec: the uploaded file, if there is one.
func (p *UpgradeSpec) Blobs() []BlobRef {
	if p.Source != SourceBlob {
		return nil
	}
	return []BlobRef{{Role: BlobPackage, SHA256: p.SHA256, Size: p.Size}}
}

// MaxNotes bounds release notes; they travel in every check answer.
const MaxNotes = 8 << 10

var (
	sha256Pattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	bundleIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`)
)

// ValidSHA256 reports whether s is a lowercase hex sha256 digest.
func ValidSHA256(s string) bool { return sha256Pattern.MatchString(s) }

// storeSchemes are the URL schemes that open a store page on a device.
var storeSchemes = map[string]bool{"https": true, "itms-apps": true, "market": true, "appmarket": true}

// Validate implements ArtifactSpec.
func (p *UpgradeSpec) Validate(a *Artifact) error {
	if a.Platform == "" {
		return Errorf(EINVALID, "a package needs a platform: android, ios or harmony")
	}
	if p.Build < 0 {
		return Errorf(EINVALID, "build number %d is negative", p.Build)
	}
	if err := ValidText("release notes", p.Notes, MaxNotes, true); err != nil {
		return err
	}
	for _, r := range p.AppVersions {
		if err := r.Validate(); err != nil {
			return Errorf(EINVALID, "app_versions: %v", err)
		}
	}
	if p.Channel != "" {
		if err := ValidChannel(p.Channel); err != nil {
			return err
		}
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
		if a.Platform != IOS {
			return Errorf(EINVALID, "enterprise over-the-air install is for ios packages only")
		}
		if !bundleIDPattern.MatchString(p.BundleID) {
			return Errorf(EINVALID, "enterprise package needs bundle_id like com.example.app, got %q", p.BundleID)
		}
	} else if p.BundleID != "" || p.Title != "" {
		return Errorf(EINVALID, "bundle_id and title apply to enterprise ios packages only; set enterprise")
	}
	p.Title = strings.TrimSpace(p.Title)
	if err := ValidText("title", p.Title, 200, false); err != nil {
		return err
	}
	return ValidText("file name", p.FileName, 255, false)
}

// MaxURL bounds a URL a device is sent: every check answer that offers the
// package carries it.
const MaxURL = 4096

func checkURL(raw string, schemes map[string]bool) error {
	if raw == "" {
		return Errorf(EINVALID, "url is required for this source")
	}
	if len(raw) > MaxURL {
		return Errorf(EINVALID, "url is %d bytes; keep it under %d (every check answer carries it)", len(raw), MaxURL)
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

// UpgradeMode is how insistently a device asks its user to upgrade.
type UpgradeMode string

const (
	// ModeSingle reminds once per RemindInterval.
	ModeSingle UpgradeMode = "single"
	// ModeMultiple reminds at every check.
	ModeMultiple UpgradeMode = "multiple"
	// ModeForce blocks the app until the user upgrades.
	ModeForce UpgradeMode = "force"
)

// DefaultRemindInterval is the single-reminder interval when a task sets none.
const DefaultRemindInterval = 72 * time.Hour

// UpgradePolicy is how an upgrade task asks users to upgrade.
type UpgradePolicy struct {
	Mode UpgradeMode `json:"mode"`
	// RemindInterval throttles single-reminder tasks.
	RemindInterval time.Duration `json:"remind_interval,omitempty"`
}

// Kind implements TaskPolicy.
func (*UpgradePolicy) Kind() Kind { return KindUpgrade }

// Validate implements TaskPolicy.
func (p *UpgradePolicy) Validate() error {
	switch p.Mode {
	case ModeSingle, ModeMultiple, ModeForce:
	case "":
		return Errorf(EINVALID, "choose an upgrade mode: single, multiple or force")
	default:
		return Errorf(EINVALID, "upgrade mode %q is not one of single, multiple, force", p.Mode)
	}
	switch {
	case p.RemindInterval < 0:
		return Errorf(EINVALID, "remind interval is negative")
	case p.RemindInterval == 0 && p.Mode == ModeSingle:
		p.RemindInterval = DefaultRemindInterval
	case p.RemindInterval != 0 && p.Mode != ModeSingle:
		return Errorf(EINVALID, "a remind interval applies to single-reminder tasks only")
	case p.RemindInterval > 0 && p.RemindInterval < time.Minute:
		return Errorf(EINVALID, "remind interval %s is shorter than a minute; use mode multiple to remind at every check", p.RemindInterval)
	}
	return nil
}

// Reminder records one upgrade reminder shown on a device: what a device
// holds of the upgrade kind, besides its installed version.
type Reminder struct {
	TaskID int64     `json:"task_id"`
	At     time.Time `json:"at"`
}

// reminderSkew tolerates a device clock running somewhat ahead of the
// server's, for devices that do not report their clock.
const reminderSkew = 5 * time.Minute

// Remind reports whether a device should remind its user of task's upgrade
// now. Forced and multiple-reminder upgrades always remind; single ones
// once per interval. The device keeps its last reminder, so the server
// keeps no per-device state; the elapsed time is measured on the device's
// own clock when it sends one (DeviceTime), so a device whose clock is off
// by any constant amount is throttled correctly, and on the server's clock
// otherwise.
func (p *UpgradePolicy) Remind(task int64, d *Device, now time.Time) bool {
	if p.Mode != ModeSingle {
		return true
	}
	last := d.LastReminded
	if last == nil || last.TaskID != task {
		return true
	}
	if d.DeviceTime != nil {
		elapsed := d.DeviceTime.Sub(last.At)
		// A reminder "in the future" means the device clock jumped back:
		// the interval cannot be known, so remind and let it record anew.
		return elapsed < 0 || elapsed >= p.RemindInterval
	}
	recent := last.At.After(now.Add(-p.RemindInterval)) && !last.At.After(now.Add(reminderSkew))
	return !recent
}
