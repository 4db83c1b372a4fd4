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
	Network    string            `json:"network,omitempty"` // wifi, 2g, 3g, 4g, 5g, ethernet, unknown
	Region     string            `json:"region,omitempty"`
	City       string            `json:"city,omitempty"`
	Channel    string            `json:"channel,omitempty"`
	Language   string            `json:"language,omitempty"` // BCP 47, e.g. zh-CN
	Attributes map[string]string `json:"attributes,omitempty"`
	// LastReminded is when the device last showed an upgrade reminder, and
	// for which task. The device keeps it, so single-reminder throttling
	// needs no per-device state on the server.
	LastReminded *Reminder `json:"last_reminded,omitempty"`
}

// Reminder records one reminder shown on a device.
type Reminder struct {
	TaskID int64     `json:"task_id"`
	At     time.Time `json:"at"`
}

// Limits on what a device may send; a check body is small and a larger one is
// a bug or an attack.
const (
	MaxDeviceField = 256
	MaxAttributes  = 64
)

var networks = map[string]bool{"": true, "wifi": true, "2g": true, "3g": true, "4g": true, "5g": true, "ethernet": true, "unknown": true}

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
	if !networks[d.Network] {
		return Errorf(EINVALID, "network %q is not one of wifi, 2g, 3g, 4g, 5g, ethernet, unknown", d.Network)
	}
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
