package sdk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mds-dev/mds"
)

// Answer is a verified check answer: signed by a trusted server key, for
// this app and this device's state, not older than any this device
// accepted, not expired.
type Answer struct {
	App string `json:"app"` // the app key the answer is for
	// Version is the app's revision on the server when the answer was
	// made. It never goes down, and an answer below the highest accepted
	// is refused (ErrReplay); but answers at one version can differ (a
	// ramp moving, a time window opening, a new signing period), so an
	// equal version says nothing of whether the answer changed.
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"` // the answer stands until then, on the device's clock
	// Device is the device state the answer was computed for, which the
	// server echoes from the check: it is what this device sent, or the
	// answer is refused (ErrNotForDevice).
	Device AnswerDevice `json:"device"`
	// Upgrade is the app upgrade offered; nil for none.
	Upgrade *Upgrade `json:"upgrade"`
	// Hotpatch is what the device should do about hotpatches; nil for
	// nothing.
	Hotpatch *HotpatchInstruction `json:"hotpatch"`
	// Offline are the offline packages offered: a newer version of each
	// than the device holds (InstallOffline).
	Offline []OfflineInstruction `json:"offline"`
	// Config names the index of the device's configuration
	// (UpdateConfig); nil when the app has none.
	Config *ConfigRef `json:"config"`
	// NotModified: the server answered 304 and this is the stored answer.
	NotModified bool `json:"not_modified"`
	// ETag is the answer's ETag, sent back as If-None-Match.
	ETag string `json:"etag,omitempty"`
	// Body is the signed document, exactly as the server sent it.
	Body []byte `json:"-"`

	// verified marks an Answer that Check returned: Apply follows no
	// other, so that an answer cannot skip verification by being built
	// by hand or decoded from somewhere.
	verified bool
}

// AnswerDevice is the part of a check's device context that an answer is
// bound to: the server signs it into the answer, so that an answer fetched
// for one device's state cannot be served to a device in another (a
// rollback withheld or forced, a patch downgraded). Platform and
// AppVersion are exactly as the check sent them, Build is 0 when it sent
// none, and Hotpatch is the patch it reported running, nil for none.
type AnswerDevice struct {
	Platform   mds.Platform      `json:"platform"`
	AppVersion string            `json:"app_version"`
	Build      int64             `json:"build"`
	Hotpatch   *mds.AppliedPatch `json:"hotpatch"`
	// Offline is the digest of the offline packages it reported holding
	// (mds.AppendHeldDigest); absent when none.
	Offline string `json:"offline,omitempty"`
}

func (d *AnswerDevice) equal(o *AnswerDevice) bool {
	return d.Platform == o.Platform && d.AppVersion == o.AppVersion && d.Build == o.Build &&
		(d.Hotpatch == nil && o.Hotpatch == nil || d.Hotpatch != nil && o.Hotpatch != nil && *d.Hotpatch == *o.Hotpatch) &&
		d.Offline == o.Offline
}

func (d *AnswerDevice) String() string {
	s := fmt.Sprintf("%s %s build %d, ", d.Platform, d.AppVersion, d.Build)
	if d.Hotpatch == nil {
		s += "running no patch"
	} else {
		s += fmt.Sprintf("running patch %d v%d", d.Hotpatch.ID, d.Hotpatch.PatchVersion)
	}
	if d.Offline != "" {
		s += ", holding offline packages of digest " + d.Offline
	}
	return s
}

// boundTo is what an answer for a check of dev must say in its device
// member.
func boundTo(dev *mds.Device) AnswerDevice {
	d := AnswerDevice{Platform: dev.Platform, AppVersion: dev.AppVersion, Build: dev.Build, Hotpatch: dev.Hotpatch}
	if len(dev.Offline) > 0 {
		d.Offline = string(mds.AppendHeldDigest(nil, dev.Offline))
	}
	return d
}

// Upgrade is an upgrade offer; see docs/protocol.md for each member.
type Upgrade struct {
	TaskID                int64  `json:"task_id"`
	Stage                 string `json:"stage"`
	PackageID             int64  `json:"package_id"`
	Version               string `json:"version"`
	Build                 int64  `json:"build,omitempty"`
	Mode                  string `json:"mode"` // single, multiple or force
	Remind                bool   `json:"remind"`
	RemindIntervalSeconds int64  `json:"remind_interval_seconds,omitempty"`
	Notes                 string `json:"notes"`
	Source                string `json:"source"` // blob, url or store
	URL                   string `json:"url"`
	PackageURL            string `json:"package_url,omitempty"`
	Size                  int64  `json:"size,omitempty"`
	SHA256                string `json:"sha256,omitempty"`
	Network               string `json:"network"` // any or wifi
	Silent                bool   `json:"silent"`
}

// Hotpatch actions.
const (
	// ActionApply: the device should run patch PatchID.
	ActionApply = "apply"
	// ActionRollback: the patch the device runs is withdrawn; it should
	// go back to PatchID, or to no patch when PatchID is 0.
	ActionRollback = "rollback"
)

// HotpatchInstruction is the hotpatch section of an answer. Apply follows
// it; an action this SDK does not know is ignored, as unknown members are.
type HotpatchInstruction struct {
	Action       string `json:"action"`
	TaskID       int64  `json:"task_id,omitempty"`
	Stage        string `json:"stage,omitempty"` // gray or official
	PatchID      int64  `json:"patch_id"`        // 0 only in a rollback to no patch
	PatchVersion int64  `json:"patch_version,omitempty"`
	Notes        string `json:"notes,omitempty"`
	URL          string `json:"url,omitempty"`    // the hotpatch file
	SHA256       string `json:"sha256,omitempty"` // of the hotpatch file, lowercase hex
	Size         int64  `json:"size,omitempty"`   // of the hotpatch file
	KeyID        string `json:"key_id,omitempty"` // the team key that signed it
}

// remote is the hotpatch file h names, of at most max bytes.
func (h *HotpatchInstruction) remote(max int64) remote {
	return remote{what: "hotpatch", URL: h.URL, SHA256: h.SHA256, Size: h.Size, Max: max}
}

// document is the signed answer as it is on the wire; pointers tell a
// member that is absent from a zero.
type document struct {
	App      string          `json:"app"`
	Version  *int64          `json:"version"`
	Expires  *time.Time      `json:"expires"`
	Device   json.RawMessage `json:"device"`
	Upgrade  json.RawMessage `json:"upgrade"`
	Hotpatch json.RawMessage `json:"hotpatch"`
	Offline  json.RawMessage `json:"offline"`
	Config   json.RawMessage `json:"config"`
}

// maxAnswerBody bounds the bytes read of a check answer: a few kilobytes
// in practice, so much more is not an answer.
const maxAnswerBody = 1 << 20

// signatureHeader carries the answer's signatures.
const signatureHeader = "Mds-Signature"

// Check asks the server what this device should do, and returns the
// verified answer: the new one on 200 (then stored), or on 304 the stored
// one while it has not expired. The state changes only when an answer is
// accepted, and then only its record of the answer.
//
// A 200 is verified in this order, the first failure refusing it: the
// signature (ErrUntrustedAnswer, ErrBadAnswerSignature), the document's
// form (ErrMalformedAnswer), the app (ErrWrongApp), the device state it
// was computed for (ErrNotForDevice), the version (ErrReplay), the expiry
// (ErrExpired). A 304 reuses the stored answer only if it passes the same
// checks but the version, its device against what this check sent.
//
// The check reports the patch the app actually runs (Status.Running): the
// current one, but while a patch applied since the app started waits for
// the next launch, the one running until then.
func (c *Client) Check(ctx context.Context) (*Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, sent, err := c.newRequest(ctx, "client/v1/check")
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the mds server: %w", err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotModified:
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBody))
		return c.notModified(&sent)
	case resp.StatusCode == http.StatusOK:
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody+1))
		if err != nil {
			return nil, fmt.Errorf("reading the server's answer: %w", err)
		}
		if len(b) > maxAnswerBody {
			return nil, refusal(ErrMalformedAnswer, "the answer is longer than %d bytes", maxAnswerBody)
		}
		return c.accept(b, strings.Join(resp.Header.Values(signatureHeader), ","), resp.Header.Get("ETag"), &sent)
	case resp.StatusCode >= 400:
		return nil, readProblem(resp, c.now())
	default:
		return nil, refusal(ErrMalformedAnswer, "a check answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
}

// newRequest builds a POST of the device context to path, with the ETag
// of the stored answer in If-None-Match when it could be reused, and
// returns it with the device state it binds answers to.
func (c *Client) newRequest(ctx context.Context, path string) (*http.Request, AnswerDevice, error) {
	c.mu.Lock()
	dev := c.cfg.Device
	dev.Hotpatch, dev.Offline = c.reported(), c.held()
	now := c.now()
	dev.DeviceTime = &now
	sent := boundTo(&dev)
	// The ETag goes only with a stored answer that could be reused: after
	// it expires, once the build no longer trusts what signed it, or once
	// the device's state is not the one it was computed for, the server
	// must send a fresh one, and a 304 is refused.
	etag := ""
	if s := c.st.Answer; s != nil && s.ETag != "" {
		if _, err := c.verify(s.Body, s.Signature, now, false, &sent); err == nil {
			etag = s.ETag
		}
	}
	c.mu.Unlock()

	body, err := json.Marshal(&dev)
	if err != nil {
		return nil, sent, err
	}
	u, err := c.resolve(path)
	if err != nil {
		return nil, sent, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, sent, err
	}
	req.Header.Set("Content-Type", "application/json")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	return req, sent, nil
}

// reported is what a check reports of the hotpatch kind: the patch the
// app runs, nil for none, and never one that does not patch the app's
// version and build. The caller holds mu.
func (c *Client) reported() *mds.AppliedPatch {
	p := c.st.running()
	if p == nil || !p.patches(c.cfg.Device.AppVersion, c.cfg.Device.Build) {
		return nil
	}
	return &mds.AppliedPatch{ID: p.ID, PatchVersion: p.PatchVersion}
}

// notModified answers a 304: the stored answer, if it still stands for
// the device state sent. A check without If-None-Match means the stored
// answer could not be reused; a 304 to it is refused for the reason it
// could not.
func (c *Client) notModified(sent *AnswerDevice) (*Answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st.Answer
	if s == nil || s.ETag == "" {
		return nil, refusal(ErrMalformedAnswer, "304 Not Modified to a check that sent no ETag: there is no answer to reuse")
	}
	a, err := c.verify(s.Body, s.Signature, c.now(), false, sent)
	if err != nil {
		return nil, fmt.Errorf("304 Not Modified, but the stored answer no longer stands: %w", err)
	}
	a.ETag, a.NotModified = s.ETag, true
	return a, nil
}

// accept verifies a 200's answer and, if it passes, stores it.
func (c *Client) accept(body []byte, sig, etag string, sent *AnswerDevice) (*Answer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.verify(body, sig, c.now(), true, sent)
	if err != nil {
		return nil, err
	}
	a.ETag = etag
	next := c.st.clone()
	next.Answer = &storedAnswer{Version: a.Version, Expires: a.Expires, ETag: etag, Body: body, Signature: sig}
	if err := c.commit(next); err != nil {
		return nil, err
	}
	return a, nil
}

// verify runs the checks of an answer in order, the first failure
// refusing it: the signature, the document's form, the app, the device
// state against sent, the version (when replay is set: a stored answer is
// the highest accepted by construction), the expiry. The caller holds mu.
func (c *Client) verify(body []byte, sig string, now time.Time, replay bool, sent *AnswerDevice) (*Answer, error) {
	if err := c.verifySignature(body, sig); err != nil {
		return nil, err
	}
	a, err := c.parse(body)
	if err != nil {
		return nil, err
	}
	if a.App != c.cfg.Device.AppKey {
		return nil, refusal(ErrWrongApp, "it is for app %q, this device is app %q", a.App, c.cfg.Device.AppKey)
	}
	if !a.Device.equal(sent) {
		return nil, refusal(ErrNotForDevice, "it was computed for %s, and this device is %s: an answer fetched for another device state; the device keeps its state", &a.Device, sent)
	}
	if s := c.st.Answer; replay && s != nil && a.Version < s.Version {
		return nil, refusal(ErrReplay, "version %d is lower than version %d accepted before: a replayed answer or a server node behind the others; the device keeps its state, check again later", a.Version, s.Version)
	}
	if !a.Expires.After(now) {
		return nil, refusal(ErrExpired, "it expired at %s and the device's clock says %s: the server signs answers afresh before they expire, so this one was held back, or the device's clock is wrong", a.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return a, nil
}

// signature is one entry of an Mds-Signature header.
type signature struct {
	keyID string
	sig   []byte // nil when it is not valid base64
}

// parseSignatures reads Mds-Signature: comma-separated entries of
// semicolon-separated parameters, keyid=<64 hex> and sig=<standard
// base64>. Parameters it does not know are ignored, so that a server may
// add some; an entry without a keyid cannot be attributed and is skipped.
// Neither separator occurs in base64, so splitting is exact.
func parseSignatures(h string) []signature {
	var out []signature
	for entry := range strings.SplitSeq(h, ",") {
		var s signature
		for param := range strings.SplitSeq(entry, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			switch strings.TrimSpace(k) {
			case "keyid":
				s.keyID = strings.TrimSpace(v)
			case "sig":
				if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err == nil {
					s.sig = b
				}
			}
		}
		if s.keyID != "" {
			out = append(out, s)
		}
	}
	return out
}

// verifySignature checks that a trusted server key signed body. One valid
// signature by a trusted key suffices: during a rotation the server signs
// with the old key and the new, and a build trusts one or both. An
// attacker without a trusted private key can make none, and a signature
// by an untrusted key is no evidence either way.
func (c *Client) verifySignature(body []byte, h string) error {
	trusted := false
	sigs := parseSignatures(h)
	for _, s := range sigs {
		k := c.serverKeys[s.keyID]
		if k == nil {
			continue
		}
		trusted = true
		if s.sig != nil && k.Verify(body, s.sig) == nil {
			return nil
		}
	}
	if !trusted {
		if h == "" {
			return refusal(ErrUntrustedAnswer, "it has no %s header: something other than the mds server answered, or the server has no signing key configured", signatureHeader)
		}
		ids := make([]string, len(sigs))
		for i, s := range sigs {
			ids[i] = s.keyID
		}
		if len(ids) == 0 {
			return refusal(ErrUntrustedAnswer, "its %s header names no key", signatureHeader)
		}
		return refusal(ErrUntrustedAnswer, "it is signed by %s, which this build does not trust: build the app with the deployment's keys (mds keys server-public)", strings.Join(ids, " and "))
	}
	return refusal(ErrBadAnswerSignature, "the signature by the trusted key does not match the body")
}

// parse reads a signed document.
func (c *Client) parse(body []byte) (*Answer, error) {
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, refusal(ErrMalformedAnswer, "the signed answer is not the check document: %v", err)
	}
	if d.App == "" || d.Version == nil || *d.Version < 0 || d.Expires == nil {
		return nil, refusal(ErrMalformedAnswer, "the signed answer lacks app, version or expires")
	}
	if !isJSONValue(d.Device) {
		return nil, refusal(ErrMalformedAnswer, "the signed answer names no device it was computed for: a server older than this SDK, which must be upgraded")
	}
	a := &Answer{App: d.App, Version: *d.Version, Expires: *d.Expires, Body: body, verified: true}
	if err := json.Unmarshal(d.Device, &a.Device); err != nil {
		return nil, refusal(ErrMalformedAnswer, "the device section: %v", err)
	}
	if isJSONValue(d.Upgrade) {
		a.Upgrade = new(Upgrade)
		if err := json.Unmarshal(d.Upgrade, a.Upgrade); err != nil {
			return nil, refusal(ErrMalformedAnswer, "the upgrade section: %v", err)
		}
	}
	if isJSONValue(d.Hotpatch) {
		a.Hotpatch = new(HotpatchInstruction)
		if err := json.Unmarshal(d.Hotpatch, a.Hotpatch); err != nil {
			return nil, refusal(ErrMalformedAnswer, "the hotpatch section: %v", err)
		}
	}
	if isJSONValue(d.Offline) {
		if err := json.Unmarshal(d.Offline, &a.Offline); err != nil {
			return nil, refusal(ErrMalformedAnswer, "the offline section: %v", err)
		}
	}
	if isJSONValue(d.Config) {
		a.Config = new(ConfigRef)
		if err := json.Unmarshal(d.Config, a.Config); err != nil {
			return nil, refusal(ErrMalformedAnswer, "the config section: %v", err)
		}
	}
	return a, nil
}

// isJSONValue reports whether a member was given a value other than null.
func isJSONValue(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// readProblem reads an error answer's problem document. What does not
// parse as one becomes its detail, truncated, so that a proxy's error page
// still says something.
func readProblem(resp *http.Response, now time.Time) *ServerError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &ServerError{}
	if json.Unmarshal(b, e) != nil {
		e = &ServerError{Detail: strings.TrimSpace(string(b))}
		if len(e.Detail) > 512 {
			e.Detail = e.Detail[:512] + "…"
		}
	}
	e.Status = resp.StatusCode
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	return e
}
