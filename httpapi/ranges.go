package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxRanges bounds the ranges one request may ask for. The SDK resumes a
// download with a single range and parallel downloaders send one range per
// request; more than a few ranges in one request is a broken client or an
// attack, because each range is parsed and, when satisfiable, answered as
// its own multipart part (RFC 9110 §14.2 lets a server reject such sets).
// Eight leaves room for players that fetch an index and a few chunks at
// once.
const maxRanges = 8

// maxListElements bounds the comma-separated elements of a Range header,
// empty ones included, so that a header of commas costs little.
const maxListElements = 4 * maxRanges

// checkRange decides, before http.ServeContent sees it, whether the Range
// header of a GET or HEAD for a blob of size bytes can be served. It
// returns
//
//   - 0: pass the request to ServeContent as it is;
//   - http.StatusOK: serve the whole blob, as RFC 9110 allows a server to
//     ignore Range; delete the Range header before calling ServeContent,
//     which would otherwise answer 416 (another unit) or a 206 with a
//     zero-length range (a zero suffix among others, any suffix of an
//     empty blob);
//   - http.StatusRequestedRangeNotSatisfiable with a detail for the
//     client: answer a problem document with "Content-Range: bytes */size"
//     (RFC 9110 §15.5.17), which the caller sets.
//
// The check runs before ServeContent evaluates If-Match, If-None-Match and
// If-Range, so a request with a bad Range and a failing precondition gets
// 416 where RFC 9110 §13.2.2 would put 412 or 304 first. Blob URLs name
// content that never changes, so those preconditions hold for any client
// that has the blob; the order only matters to a client that is wrong
// twice.
func checkRange(header string, size int64) (status int, detail string) {
	if header == "" {
		return 0, ""
	}
	unit, set, ok := strings.Cut(header, "=")
	if !ok || !isToken(unit) {
		return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
	}
	if unit != "bytes" {
		// RFC 9110 §14.2: a server ignores a unit it does not know.
		// Range units are case-insensitive, but ServeContent only
		// understands "bytes", so "Bytes" is ignored the same way.
		return http.StatusOK, ""
	}
	// specs counts list elements, empty ones too, so that the loop is
	// bounded whatever the header holds; given counts real ranges, which
	// maxRanges bounds.
	var specs, given, satisfiable int
	zeroLength := false
	for elem := range strings.SplitSeq(set, ",") {
		specs++
		if specs > maxListElements {
			return http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("the Range header has more than %d list elements; ask for at most %d ranges", maxListElements, maxRanges)
		}
		elem = strings.Trim(elem, " \t")
		if elem == "" {
			// RFC 9110 §5.6.1: empty list elements are allowed and
			// mean nothing.
			continue
		}
		given++
		if given > maxRanges {
			return http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("the Range header asks for more than %d ranges; ask for at most %d, or for the whole blob without Range", maxRanges, maxRanges)
		}
		first, last, ok := strings.Cut(elem, "-")
		if !ok {
			return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
		}
		if first == "" {
			n, ok := rangePos(last)
			if !ok {
				return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
			}
			switch {
			case n == 0:
				// Unsatisfiable, yet ServeContent would answer it
				// with a zero-length range.
				zeroLength = true
			case size == 0:
				// Satisfiable by RFC 9110 §14.1.1, but no 206 can
				// carry zero bytes.
				zeroLength = true
				satisfiable++
			default:
				satisfiable++
			}
			continue
		}
		start, ok := rangePos(first)
		if !ok {
			return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
		}
		if last != "" {
			end, ok := rangePos(last)
			if !ok || end < start {
				return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
			}
		}
		if start < size {
			satisfiable++
		}
	}
	switch {
	case given == 0:
		return http.StatusRequestedRangeNotSatisfiable, rangeSyntax
	case satisfiable == 0 && zeroLength:
		return http.StatusRequestedRangeNotSatisfiable, "a suffix range of zero bytes selects nothing; ask for at least one byte, or for the whole blob without Range"
	case satisfiable == 0:
		return http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("the requested range starts at or after the end of the blob, which is %d bytes long; ask for bytes before %d, or stop if the download is complete", size, size)
	case zeroLength:
		return http.StatusOK, ""
	}
	return 0, ""
}

const rangeSyntax = "the Range header is not a valid byte range; send bytes=<first>-<last>, bytes=<first>- or bytes=-<length>, several separated by commas"

// rangePos parses a first-pos, last-pos or suffix-length: digits only
// (strconv alone would accept a sign), and within int64, beyond which
// ServeContent would fail to parse it.
func rangePos(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of a range
// unit.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// problemOnError wraps w for standard library helpers such as
// http.ServeContent, whose errors are plain text: when they answer a
// status of 400 or more, the client gets render(status, detail) as a
// problem document instead, and their own body is dropped. Other answers
// pass through untouched, including ReadFrom, so sendfile still serves
// blobs; Unwrap lets http.ResponseController reach w.
func problemOnError(w http.ResponseWriter, render func(status int, detail string) []byte) http.ResponseWriter {
	return &problemWriter{w: w, render: render}
}

type problemWriter struct {
	w      http.ResponseWriter
	render func(status int, detail string) []byte
	// started is set once a final status is chosen; failed once that
	// status is an error whose body is ours.
	started, failed bool
}

func (p *problemWriter) Header() http.Header { return p.w.Header() }

func (p *problemWriter) Unwrap() http.ResponseWriter { return p.w }

func (p *problemWriter) WriteHeader(code int) {
	if p.started || code < 200 {
		// A second status is net/http's to complain about; a 1xx is
		// not the final answer.
		p.w.WriteHeader(code)
		return
	}
	p.started = true
	if code < 400 {
		p.w.WriteHeader(code)
		return
	}
	p.failed = true
	body := p.render(code, stdlibErrorDetail(code))
	h := p.w.Header()
	// Validators, digests and coding describe the blob, not this document.
	for _, k := range []string{"Etag", "Last-Modified", "Content-Encoding", "Content-Disposition", "Repr-Digest", "Content-Digest"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	p.w.WriteHeader(code)
	// A HEAD answer has no body; net/http refuses it and that is right.
	_, _ = p.w.Write(body)
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if p.failed {
		return len(b), nil
	}
	p.started = true
	return p.w.Write(b)
}

func (p *problemWriter) ReadFrom(r io.Reader) (int64, error) {
	if p.failed {
		return io.Copy(io.Discard, r)
	}
	p.started = true
	if rf, ok := p.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{p.w}, r)
}

// stdlibErrorDetail says what to do about the errors http.ServeContent
// answers; its own texts ("seeker can't seek") are not for clients.
func stdlibErrorDetail(code int) string {
	switch {
	case code == http.StatusPreconditionFailed:
		return "the blob does not meet the request's If-Match or If-Unmodified-Since condition; download it again without those conditions"
	case code == http.StatusRequestedRangeNotSatisfiable:
		return "the requested byte range cannot be served from this blob; ask for bytes inside it, or for the whole blob without Range"
	case code >= 500:
		return "the server could not read the blob; try again later"
	}
	return "the request could not be served (" + http.StatusText(code) + "); check it and try again"
}

// rangeServable refuses, with a 416 problem naming the file's size, a
// Range of r that a file of size bytes cannot serve, and drops one that
// is better served whole (checkRange); it reports whether to go on.
func rangeServable(w http.ResponseWriter, r *http.Request, size int64) bool {
	switch st, detail := checkRange(r.Header.Get("Range"), size); st {
	case 0:
	case http.StatusOK:
		r.Header.Del("Range")
	default:
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		writeProblemStatus(w, st, detail)
		return false
	}
	return true
}
