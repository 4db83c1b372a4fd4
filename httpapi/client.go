package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/release"
)

// checkAnswer is the body of a check response. Each delivery kind gets its
// own field, absent kinds are null, so old SDKs ignore kinds they predate.
type checkAnswer struct {
	Upgrade *upgradeAnswer `json:"upgrade"`
}

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

func newUpgradeAnswer(d release.Decision) *upgradeAnswer {
	o := d.Offer
	if o == nil {
		return nil
	}
	p, t := o.Package, o.Task
	return &upgradeAnswer{
		TaskID: t.ID, Stage: t.Stage, PackageID: p.ID, Version: p.Version, Build: p.Build, Mode: t.Mode, Remind: d.Remind,
		RemindIntervalSeconds: int64(t.RemindInterval.Seconds()), Notes: p.Notes, Source: p.Source,
		URL: o.Link, PackageURL: o.PackageURL, Size: p.Size, SHA256: p.SHA256, Network: p.Network, Silent: p.Silent,
	}
}

// check answers a device: decode, validate, evaluate against the snapshot,
// answer with an ETag. It touches the store only to admit a device to an
// open capped window, through the Admissions in front of it.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	// The whole body must arrive within the body timeout; the server resets
	// the deadline for the next request on the connection.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.bodyWait))
	var dev mds.Device
	if err := decodeJSON(w, r, maxCheckBody, &dev); err != nil {
		s.metrics.check("invalid")
		s.writeProblem(w, r, err)
		return
	}
	if err := dev.Validate(); err != nil {
		s.metrics.check("invalid")
		s.writeProblem(w, r, err)
		return
	}
	snap := s.live.Current()
	if snap == nil {
		s.metrics.check("unavailable")
		w.Header().Set("Retry-After", "5")
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up: no release snapshot loaded yet; retry shortly"))
		return
	}
	in := gray.NewInput(&dev, clientIP(r, s.proxies), s.now())
	dec, err := snap.Evaluate(&in, s.admit)
	if err != nil {
		outcome := "invalid"
		switch mds.ErrorCode(err) {
		case mds.ENOTFOUND:
			outcome = "unknown_app"
		case mds.EINVALID:
			err = mds.Errorf(mds.EINVALID, "this app ships on %s, not on %s", mds.JoinPlatforms(dec.App.Platforms), dev.Platform)
		}
		s.metrics.check(outcome)
		s.writeProblem(w, r, err)
		return
	}
	s.recent.Record(&in)
	ans := answerFor(dec)
	h := w.Header()
	etag := ans.ETag
	h.Set("ETag", etag)
	// Devices may keep the answer but must revalidate it on every check.
	h.Set("Cache-Control", "private, no-cache")
	// A check is a POST, yet the product contract answers an unchanged
	// result with 304, as GET would: the SDK sends If-None-Match with the
	// last ETag and skips parsing when nothing changed.
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		s.metrics.check("not_modified")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	outcome := "none"
	if dec.Offer != nil {
		outcome = "upgrade"
	}
	s.metrics.check(outcome)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", ans.length)
	w.Write(ans.Body)
}

// answer is an encoded check answer with its ETag.
type answer struct {
	Body   []byte
	ETag   string
	length string
}

func encodeAnswer(a checkAnswer) *answer {
	body, err := json.Marshal(a)
	if err != nil {
		panic(err) // plain structs of strings and numbers always encode
	}
	body = append(body, '\n')
	sum := sha256.Sum256(body)
	return &answer{Body: body, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`, length: strconv.Itoa(len(body))}
}

var noUpgrade = encodeAnswer(checkAnswer{})

// answerFor returns the encoded answer for a decision. An offer's answer
// depends only on the offer and whether to remind, so each of the two is
// encoded once per snapshot and kept on the offer.
func answerFor(dec release.Decision) *answer {
	if dec.Offer == nil {
		return noUpgrade
	}
	return dec.Offer.Memo(dec.Remind, func() any {
		return encodeAnswer(checkAnswer{Upgrade: newUpgradeAnswer(dec)})
	}).(*answer)
}

// clientIP is the address a check came from: the peer, or, when the peer
// is a trusted proxy, the last address in X-Forwarded-For that is not one.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip // a garbled header: trust what we saw
		}
		if hop = hop.Unmap(); !isTrusted(hop, trusted) {
			return hop
		}
	}
	return ip
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// etagMatch reports whether an If-None-Match header lists etag (weak
// comparison, as RFC 9110 prescribes for If-None-Match). "*" does not
// count: it asks whether any answer exists, which a check always has.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for c := range strings.SplitSeq(header, ",") {
		c = strings.TrimSpace(c)
		if strings.TrimPrefix(c, "W/") == etag {
			return true
		}
	}
	return false
}

// decodeJSON reads one JSON value of at most limit bytes into v. The
// Content-Type is not checked: the body is JSON or it is refused, and a
// missing header (curl's -d sends a form type) is not worth a failed check.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return mds.Errorf(mds.ETOOLARGE, "body is larger than %d bytes", limit)
		case errors.As(err, &syntax):
			return mds.Errorf(mds.EINVALID, "body is not valid JSON: %v at byte %d", syntax, syntax.Offset)
		case errors.As(err, &typ):
			return mds.Errorf(mds.EINVALID, "field %s must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
		case errors.Is(err, io.EOF):
			return mds.Errorf(mds.EINVALID, "body is empty; send the device context as JSON")
		}
		return mds.Errorf(mds.EINVALID, "body is not valid JSON: %v", err)
	}
	if dec.More() {
		return mds.Errorf(mds.EINVALID, "body holds more than one JSON value")
	}
	return nil
}

// blob serves content-addressed package files that a live task delivers:
// immutable, so cacheable forever by devices and CDNs; Range and If-Range
// make downloads resumable. GET routes answer HEAD too.
func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	sum := r.PathValue("sha256")
	if !mds.ValidSHA256(sum) {
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", sum))
		return
	}
	snap := s.live.Current()
	if snap == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up; retry shortly"))
		return
	}
	if !snap.Serves(sum) {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "no released package has sha256 %s", sum))
		return
	}
	f, b, err := s.blobs.Open(r.Context(), sum)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	defer f.Close()
	raw, _ := hex.DecodeString(sum)
	h := w.Header()
	h.Set("ETag", `"`+sum+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Type", "application/octet-stream")
	// RFC 9530: lets a client verify the whole download independently.
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
	http.ServeContent(w, r, "", b.ModTime, f)
}

// manifest serves the itms-services install manifest of a live enterprise
// iOS package, at /client/v1/manifests/{app key}/{package id}.plist.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	idText, ok := strings.CutSuffix(r.PathValue("file"), ".plist")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "manifests are named <package id>.plist"))
		return
	}
	snap := s.live.Current()
	if snap == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "starting up; retry shortly"))
		return
	}
	o, ok := snap.Enterprise(r.PathValue("appkey"), id)
	if !ok {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "no live enterprise package %d", id))
		return
	}
	title := o.Package.Title
	if title == "" {
		title = o.App.Name
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Cache-Control", "no-cache")
	writeManifest(w, o.PackageURL, o.Package.BundleID, o.Package.Version, title)
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
