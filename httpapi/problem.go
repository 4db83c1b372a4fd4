package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
)

// status maps error codes to HTTP status codes; this is the only place
// that does.
func status(code string) int {
	switch code {
	case mds.EINVALID:
		return http.StatusBadRequest
	case mds.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case mds.EFORBIDDEN:
		return http.StatusForbidden
	case mds.ENOTFOUND:
		return http.StatusNotFound
	case mds.ECONFLICT:
		return http.StatusConflict
	case mds.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case mds.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// humaError converts a domain error to the problem huma writes.
func (s *Server) humaError(op string, err error) error {
	code := status(mds.ErrorCode(err))
	if code >= 500 {
		s.log.Error("request failed", "op", op, "err", err)
	}
	return huma.NewError(code, mds.ErrorMessage(err))
}

// writeProblem writes err as an RFC 9457 problem from a plain handler, in
// the same shape huma uses for the management API.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	code := status(mds.ErrorCode(err))
	if code >= 500 {
		s.log.Error("request failed", "route", r.Pattern, "err", err)
	}
	s.writeProblemStatus(w, r, code, mds.ErrorMessage(err))
}

func (s *Server) writeProblemStatus(w http.ResponseWriter, r *http.Request, code int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&huma.ErrorModel{Title: http.StatusText(code), Status: code, Detail: detail})
}
