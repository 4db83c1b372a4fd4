package sdk

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Refusals. Each error the SDK returns for a refused answer, download or
// patch matches exactly one of these with errors.Is, and says in its
// message what was wrong. A refusal never changes the state: the device
// keeps running what it ran.
var (
	// ErrUntrustedAnswer: the answer carries no Mds-Signature by a server
	// key this build trusts. Either something between device and server
	// answered (a captive portal, a proxy), or the deployment signs with a
	// key the build does not know: ship a build that trusts the new key
	// before the server signs with it alone.
	ErrUntrustedAnswer = errors.New("the answer is not signed by a server key this app trusts")
	// ErrBadAnswerSignature: a trusted key's signature is there but does
	// not verify: the answer was altered on the way.
	ErrBadAnswerSignature = errors.New("the answer's signature does not verify: it was altered after the server signed it")
	// ErrWrongApp: the answer is signed but is for another app: a valid
	// answer replayed across apps of one deployment.
	ErrWrongApp = errors.New("the answer is for another app")
	// ErrNotForDevice: the answer is signed and for this app, but was
	// computed for another device state than this device's: another
	// platform, app version or build, or another running patch than it
	// reported. A proxy serving an answer fetched for another state looks
	// like this (to withhold or force a rollback, or to downgrade), and so
	// does applying an answer after the device's state changed: check
	// again.
	ErrNotForDevice = errors.New("the answer was computed for another device state")
	// ErrReplay: the answer's version is lower than one this device
	// already accepted. An attacker replaying an old answer looks like
	// this, and so does a server node lagging behind the others: the state
	// is kept and a later check sorts it out.
	ErrReplay = errors.New("the answer is older than one this device already accepted")
	// ErrExpired: the answer's expiry is not after the device's clock, or
	// the server answered 304 while the stored answer has expired. A 304
	// forever would freeze the device on old instructions.
	ErrExpired = errors.New("the answer has expired")
	// ErrMalformedAnswer: the server broke the protocol: an answer that is
	// not the document described, a status a check never has, a 304 to a
	// check that sent no ETag, or an instruction missing what it needs.
	ErrMalformedAnswer = errors.New("the server's answer does not follow the protocol")

	// ErrTooLong: a download has more bytes than the answer's size (or the
	// answer's size is more than Config.MaxPatchSize): an endless-data
	// attack, or a server serving another file.
	ErrTooLong = errors.New("the download is larger than allowed")
	// ErrHashMismatch: the downloaded file is not the one the answer names
	// by SHA-256: a file swapped for another.
	ErrHashMismatch = errors.New("the downloaded file does not match the answer's sha256")

	// ErrUnknownTeamKey: the hotpatch or offline package is signed by a
	// key that is not one of the team keys this build trusts.
	ErrUnknownTeamKey = errors.New("the package is signed by a key this app does not trust")
	// ErrBadPatchSignature: the hotpatch's or offline package's manifest
	// does not verify with the trusted team key it names: it was altered
	// after signing. Errors that match it match bundle.ErrBadSignature
	// (or ErrWrongKey) too.
	ErrBadPatchSignature = errors.New("the package's team signature does not verify")
	// ErrBadPatch: the hotpatch file is not a well-formed hotpatch, or a
	// file in it does not match its signed manifest (then the error
	// matches hotpatch.ErrCorrupt too).
	ErrBadPatch = errors.New("the hotpatch file is not a valid hotpatch")
	// ErrPatchMismatch: the hotpatch is validly signed but not for this
	// device: another app, platform or installed version, or another patch
	// version than the answer names (a signed patch swapped for another).
	ErrPatchMismatch = errors.New("the hotpatch is not for this app version")
	// ErrDowngrade: an apply names a patch whose patch_version is not
	// above the running patch's, which patches the same app version: a
	// replayed or forged instruction to go back to an older patch. Only a
	// rollback takes a device back.
	ErrDowngrade = errors.New("the package is older than the one the app runs")
	// ErrBadOffline: the offline package is not a well-formed package, a
	// file in it does not match its signed manifest, or it is validly
	// signed but not the package and version the answer offers (a signed
	// package swapped for another).
	ErrBadOffline = errors.New("the offline package is not the valid package the answer offers")
	// ErrBadDelta: a delta could not be used: it is for another version
	// than the one held, it is corrupt, or what it makes is not the
	// version the answer names. The full package is downloaded instead.
	ErrBadDelta = errors.New("the delta does not make the offered version from the one held")
)

// ServerError is an error answer of the server: an RFC 9457 problem
// document, or what could be read of one.
type ServerError struct {
	Status int    `json:"status"`
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code,omitempty"` // mds's error code: invalid, not_found, unavailable...
	// RetryAfter is the Retry-After header's delay, 0 when absent: a
	// server that is starting says when to come back.
	RetryAfter time.Duration `json:"-"`
}

func (e *ServerError) Error() string {
	msg := fmt.Sprintf("the server answered %d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

// Retryable reports whether the same request may succeed later: 5xx and
// 408. Retry those with exponential backoff and jitter, no sooner than
// RetryAfter; other 4xx need a changed request.
func (e *ServerError) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseInt(h, 10, 64); err == nil && s > 0 {
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// refusal wraps kind with what exactly was wrong.
func refusal(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
