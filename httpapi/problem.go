package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

// problem is an RFC 9457 problem document. Code is the mds error code
// (an extension member): clients branch on it, not on the text.
type problem struct {
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Code   string              `json:"code"`
	Errors []*huma.ErrorDetail `json:"errors,omitempty" doc:"For a body that does not match the schema: each offending location"`
}

func (p *problem) Error() string  { return p.Detail }
func (p *problem) GetStatus() int { return p.Status }

// ContentType makes huma send problems as application/problem+json.
func (p *problem) ContentType(string) string { return "application/problem+json" }

func newProblem(st int, detail string) *problem {
	return &problem{Title: http.StatusText(st), Status: st, Detail: detail, Code: api.Code(st)}
}

func init() {
	// huma's own errors (a body that does not match the schema, a body
	// too slow or too large) take the same shape as ours. huma offers this
	// hook only as a package variable; it is set once, here.
	huma.NewError = func(st int, msg string, errs ...error) huma.StatusError {
		p := newProblem(st, msg)
		for _, err := range errs {
			var d *huma.ErrorDetail
			if errors.As(err, &d) {
				p.Errors = append(p.Errors, d)
			} else if err != nil {
				p.Errors = append(p.Errors, &huma.ErrorDetail{Message: err.Error()})
			}
		}
		return p
	}
}

// errorFor converts a domain error to the problem a handler answers with.
// Internal errors are logged with the operation, and answered without
// their details.
func (s *Server) errorFor(op string, err error) *problem {
	code := mds.ErrorCode(err)
	st := api.Status(code)
	// A node that is starting, full or shutting down says so: expected,
	// not a fault to log.
	if st >= 500 && code != mds.EUNAVAILABLE {
		s.log.Error("request failed", "op", op, "err", err)
	}
	p := newProblem(st, mds.ErrorMessage(err))
	p.Code = code
	return p
}

// writeProblem writes err as a problem document from a plain handler.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	writeProblemDoc(w, s.errorFor(r.Pattern, err))
}

// writeProblemStatus writes a problem of a protocol status (404, 405, 416…).
func writeProblemStatus(w http.ResponseWriter, st int, detail string) {
	writeProblemDoc(w, newProblem(st, detail))
}

func writeProblemDoc(w http.ResponseWriter, p *problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// renderProblem is a problem document's bytes, for writers that need the
// whole body first (the canned answers of net/http, stdlib helpers).
func renderProblem(st int, detail string) []byte {
	b, _ := json.Marshal(newProblem(st, detail))
	return append(b, '\n')
}
