package mds

import (
	"time"

	"github.com/mds-dev/mds/version"
)

// Device is what a device says about itself when it checks for deliveries.
// Targeting decides on these fields alone; nothing about a device is looked
// up, so a check needs no storage.
type Device struct {
	AppKey     string            `json:"app_key,omitempty"`
	Platform   Platform          `json:"platform,omitempty"`
	AppVersion string            `json:"app_version"`
	Build      int64             `json:"build,omitempty"`
	DeviceID   string            `json:"device_id"`
	UserID     string            `json:"user_id,omitempty"`
	Model      string            `json:"model,omitempty"`
	Brand      string            `json:"brand,omitempty"`
	OSVersion  string            `json:"os_version,omitempty"`
	Network    string            `json:"network,omitempty"` // wifi, 2g, 3g, 4g, 5g, ethernet, unknown; see NormalizeNetwork
	Region     string            `json:"region,omitempty"`
	City       string            `json:"city,omitempty"`
	Channel    string            `json:"channel,omitempty"`
	Language   string            `json:"language,omitempty"` // BCP 47, e.g. zh-CN
	Attributes map[string]string `json:"attributes,omitempty"`
	// DeviceTime is the device's clock when it sent the check. Durations
	// the device reports (since its last reminder) are measured against it,
	// so a device clock that is off does not skew them.
	DeviceTime *time.Time `json:"device_time,omitempty"`

	// What the device holds, per kind. For upgrades, its installed version
	// (AppVersion, Build above) and when it last showed a reminder, and for
	// which task: the device keeps it, so single-reminder throttling needs no
	// per-device state on the server.
	LastReminded *Reminder `json:"last_reminded,omitempty"`
	// For hotpatches, the patch it runs; nil for none.
	Hotpatch *AppliedPatch `json:"hotpatch,omitempty"`
	// For offline packages, the version of each it holds, by package ID.
	Offline map[string]string `json:"offline,omitempty"`
}

// Limits on what a device may send; a check body is small and a larger one is
// a bug or an attack.
const (
	MaxDeviceField = 256
	MaxAttributes  = 64
)

// Network types a device may report. Rules compare against these names;
// what a device sends is normalised to one of them (see NormalizeNetwork).
const (
	NetworkWifi     = "wifi"
	Network2G       = "2g"
	Network3G       = "3g"
	Network4G       = "4g"
	Network5G       = "5g"
	NetworkEthernet = "ethernet"
	NetworkUnknown  = "unknown"
)

// NormalizeNetwork maps what devices and their platforms call a network
// ("WIFI", "Wi-Fi", "WLAN", "LTE", "NR") to the names rules use; rules'
// own network values are normalised the same way. An
// unrecognised value becomes "unknown" rather than an error: a device must
// not lose its updates over a spelling, and a rule on network then simply
// does not match it. It does not allocate for the names it knows.
func NormalizeNetwork(s string) string {
	var buf [16]byte
	if s == "" || len(s) > len(buf) {
		if s == "" {
			return ""
		}
		return NetworkUnknown
	}
	b := buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c == '-' || c == '_' || c == ' ':
		default:
			b = append(b, c)
		}
	}
	switch string(b) {
	case "wifi", "wlan":
		return NetworkWifi
	case "2g", "gprs", "edge":
		return Network2G
	case "3g", "umts", "hspa":
		return Network3G
	case "4g", "lte":
		return Network4G
	case "5g", "nr":
		return Network5G
	case "ethernet", "eth", "wired":
		return NetworkEthernet
	}
	return NetworkUnknown
}

// Validate checks what a device sent and says which field is wrong.
func (d *Device) Validate() error {
	if d.AppKey == "" {
		return Errorf(EINVALID, "app_key is required")
	}
	if err := d.Platform.Validate(); err != nil {
		return err
	}
	if err := version.Valid(d.AppVersion); err != nil {
		return Errorf(EINVALID, "app_version: %v", err)
	}
	if d.Build < 0 {
		return Errorf(EINVALID, "build is negative")
	}
	if d.DeviceID == "" {
		return Errorf(EINVALID, "device_id is required: send a stable, app-scoped identifier")
	}
	// An array, not a map: this runs on every check and must not allocate.
	fields := [...]struct{ name, value string }{
		{"app_key", d.AppKey}, {"device_id", d.DeviceID}, {"user_id", d.UserID}, {"model", d.Model},
		{"brand", d.Brand}, {"os_version", d.OSVersion}, {"region", d.Region}, {"city", d.City},
		{"channel", d.Channel}, {"language", d.Language},
	}
	for _, f := range fields {
		if len(f.value) > MaxDeviceField {
			return Errorf(EINVALID, "%s is longer than %d bytes", f.name, MaxDeviceField)
		}
	}
	if p := d.Hotpatch; p != nil && (p.ID <= 0 || p.PatchVersion <= 0) {
		return Errorf(EINVALID, "hotpatch: patch_id and patch_version of the applied patch must be positive; send no hotpatch when none is applied")
	}
	if err := ValidOfflineHeld(d.Offline); err != nil {
		return err
	}
	d.Network = NormalizeNetwork(d.Network)
	if len(d.Attributes) > MaxAttributes {
		return Errorf(EINVALID, "%d attributes sent; at most %d are accepted", len(d.Attributes), MaxAttributes)
	}
	for k, v := range d.Attributes {
		if k == "" || len(k) > MaxDeviceField || len(v) > MaxDeviceField {
			return Errorf(EINVALID, "attribute %.32q: names must be 1-%d bytes and values at most %d", k, MaxDeviceField, MaxDeviceField)
		}
	}
	return nil
}
