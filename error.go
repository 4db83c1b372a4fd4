// Package mds holds the domain of the Mobile Delivery Service: apps, the
// packages shipped to them, the release tasks that target devices, tokens and
// roles, and the interfaces that storage adapters implement. It imports the
// standard library only; HTTP, SQL and blob technologies live in sub-packages
// named after them.
package mds

import (
	"errors"
	"fmt"
)

// Error codes are part of the contract: every adapter maps them in one place
// (HTTP status codes in httpapi), and callers branch on them with ErrorCode.
const (
	ECONFLICT     = "conflict"     // the change clashes with current state
	EINTERNAL     = "internal"     // a fault of ours; details go to the log only
	EINVALID      = "invalid"      // the request is malformed or a field is wrong
	ENOTFOUND     = "not_found"    // no such object, or not visible to the caller
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EFORBIDDEN    = "forbidden"    // valid credentials without the needed role
	ETOOLARGE     = "too_large"    // the body exceeds a configured limit
	ETIMEOUT      = "timeout"      // the request did not arrive in time
	EUNAVAILABLE  = "unavailable"  // not ready yet (no snapshot, store down)
)

// Error is an error whose code and message are meant for the caller. Messages
// should say what to do, not only what went wrong.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("mds: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-facing message of err. Internal errors get
// a generic message so that no implementation detail leaks to clients.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error; the server log has details"
}
