package httpapi

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
)

// The upgrade kind over HTTP: its section of the check answer, the links
// in it, and the install manifests of enterprise iOS builds.

// upgradeAnswer is the upgrade section of a check answer.
type upgradeAnswer struct {
	TaskID                int64             `json:"task_id"`
	Stage                 mds.Stage         `json:"stage"`
	PackageID             int64             `json:"package_id"`
	Version               string            `json:"version"`
	Build                 int64             `json:"build,omitempty"`
	Mode                  mds.UpgradeMode   `json:"mode"`
	Remind                bool              `json:"remind"`
	RemindIntervalSeconds int64             `json:"remind_interval_seconds,omitempty"`
	Notes                 string            `json:"notes"`
	Source                mds.Source        `json:"source"`
	URL                   string            `json:"url"`
	PackageURL            string            `json:"package_url,omitempty"`
	Size                  int64             `json:"size,omitempty"`
	SHA256                string            `json:"sha256,omitempty"`
	Network               mds.NetworkPolicy `json:"network"`
	Silent                bool              `json:"silent"`
}

// upgrade returns the upgrade section for choice c.
func (set *answerSet) upgrade(c delivery.UpgradeChoice) *section {
	o := c.Offer
	if o == nil {
		return nullSection
	}
	v := 0
	if c.Remind {
		v = 1
	}
	return set.memo(o.Offer, v, func() any {
		p, a := o.Spec, o.Artifact
		return &upgradeAnswer{
			TaskID: o.Task.ID, Stage: o.Task.Stage, PackageID: a.ID, Version: a.Version, Build: p.Build,
			Mode: o.Policy.Mode, Remind: c.Remind, RemindIntervalSeconds: int64(o.Policy.RemindInterval.Seconds()),
			Notes: p.Notes, Source: p.Source, URL: set.links.install(o), PackageURL: set.links.packageURL(p),
			Size: p.Size, SHA256: p.SHA256, Network: p.Network, Silent: p.Silent,
		}
	})
}

// links builds the URLs answers carry, on the public URL devices reach
// this server at. The routes are this package's: nothing else knows them.
type links struct {
	base string
}

// blob is where a stored file is downloaded.
func (l *links) blob(sum string) string { return l.base + "/client/v1/blobs/" + sum }

// packageURL is where an upgrade's file is fetched; "" for store links.
func (l *links) packageURL(p *mds.UpgradeSpec) string {
	switch p.Source {
	case mds.SourceBlob:
		return l.blob(p.SHA256)
	case mds.SourceURL:
		return p.URL
	}
	return ""
}

// install is what a device opens to install an upgrade: the file, the
// store page, or an itms-services link for an enterprise iOS build.
func (l *links) install(o *delivery.UpgradeOffer) string {
	switch {
	case o.Spec.Source == mds.SourceStore:
		return o.Spec.URL
	case o.Spec.Enterprise:
		return "itms-services://?action=download-manifest&url=" + url.QueryEscape(l.manifest(o.App.Key, o.Artifact.ID))
	}
	return l.packageURL(o.Spec)
}

// manifest is where the install manifest of enterprise package id is
// served. It names the app key, so a manifest is no easier to find than the
// check answer that links to it.
func (l *links) manifest(appKey string, id int64) string {
	return l.base + "/client/v1/manifests/" + url.PathEscape(appKey) + "/" + strconv.FormatInt(id, 10) + ".plist"
}

// writeManifest writes the property list iOS reads to install an app over
// the air: one software-package asset and the bundle's identity.
func writeManifest(w http.ResponseWriter, ipaURL, bundleID, bundleVersion, title string) {
	esc := func(s string) string {
		var b strings.Builder
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>items</key>
	<array>
		<dict>
			<key>assets</key>
			<array>
				<dict>
					<key>kind</key>
					<string>software-package</string>
					<key>url</key>
					<string>%s</string>
				</dict>
			</array>
			<key>metadata</key>
			<dict>
				<key>bundle-identifier</key>
				<string>%s</string>
				<key>bundle-version</key>
				<string>%s</string>
				<key>kind</key>
				<string>software</string>
				<key>title</key>
				<string>%s</string>
			</dict>
		</dict>
	</array>
</dict>
</plist>
`, esc(ipaURL), esc(bundleID), esc(bundleVersion), esc(title))
}
