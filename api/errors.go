package api

import (
	"net/http"

	"github.com/mds-dev/mds"
)

// Errors travel as RFC 9457 problem documents whose "code" member is the
// mds error code. The mapping between codes and HTTP statuses is part of
// the contract, so it is here, once, for the server and the client.

// Status is the HTTP status of an error code.
func Status(code string) int {
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
	case mds.ETIMEOUT:
		return http.StatusRequestTimeout
	case mds.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Code is the error code of an HTTP status: for answers whose status the
// protocol chose (422, 405, 416, 431…), or that came from elsewhere (a
// proxy's 502), so that every error has one.
func Code(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return mds.EUNAUTHORIZED
	case http.StatusForbidden:
		return mds.EFORBIDDEN
	case http.StatusNotFound:
		return mds.ENOTFOUND
	case http.StatusConflict:
		return mds.ECONFLICT
	case http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		return mds.ETOOLARGE
	case http.StatusRequestTimeout:
		return mds.ETIMEOUT
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return mds.EUNAVAILABLE
	}
	if status >= 500 {
		return mds.EINTERNAL
	}
	return mds.EINVALID
}
