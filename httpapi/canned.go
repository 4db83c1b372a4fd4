package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
)

// net/http answers some malformed requests itself, on the connection and
// before any handler runs, in plain text. Every error mds sends is an
// RFC 9457 problem document, so newProblemListener recognises those canned
// answers on their way out and sends problem documents instead.
//
// The formats below are copied from (*conn).serve in net/http/server.go
// (Go 1.26). Each canned answer goes out in one Write call straight to the
// connection, so recognising one means matching one whole Write exactly.
const (
	cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	cannedPrefix  = "HTTP/1."
	cannedStatus  = "HTTP/1.1 "
	// Written on the raw connection under TLS when the first bytes look
	// like plain HTTP.
	cannedPlainToTLS = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
	cannedBadTE      = "Unsupported transfer encoding"
	// The longest canned answer in Go 1.26 is under 250 bytes; the margin
	// lets a future, wordier statusError still be recognised, and the bound
	// lets every large write skip the check at the cost of one comparison.
	maxCannedLen = 1024
)

// newProblemListener returns ln with its connections' canned net/http
// error answers replaced by problem documents whose body is
// render(status, detail). maxHeaderBytes is the server's MaxHeaderBytes
// (0 for net/http's default), so a 431 can tell the client the limit.
//
// Wrap the plain TCP listener, beneath TLS if any: net/http finds TLS by
// asserting *tls.Conn, so no wrapper may sit above it. Under TLS only the
// plain-HTTP-to-HTTPS answer is seen in clear text here; the other canned
// answers pass through encrypted and unchanged.
func newProblemListener(ln net.Listener, maxHeaderBytes int, render func(status int, detail string) []byte) net.Listener {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return &problemListener{Listener: ln, maxHeaderBytes: maxHeaderBytes, render: render}
}

type problemListener struct {
	net.Listener
	maxHeaderBytes int
	render         func(status int, detail string) []byte
}

func (l *problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c, l: l}, nil
}

// problemConn embeds net.Conn so deadlines and the rest pass through; the
// methods net/http looks for beyond net.Conn are forwarded explicitly.
type problemConn struct {
	net.Conn
	l *problemListener
}

// Write replaces a Write that is exactly one canned answer. A handler's
// response cannot be mistaken for one in practice: its header block also
// carries Date and Content-Length or Transfer-Encoding unless a handler
// removes them on purpose; JSON bodies cannot hold raw CR LF; and blob
// bodies past their first 512 bytes (which leave with the header block)
// go through ReadFrom, not Write.
func (c *problemConn) Write(p []byte) (int, error) {
	if len(p) > maxCannedLen || !bytes.HasPrefix(p, []byte(cannedPrefix)) {
		return c.Conn.Write(p)
	}
	status, text, ok := parseCanned(p)
	if !ok {
		return c.Conn.Write(p)
	}
	body := c.l.render(status, cannedDetail(status, text, c.l.maxHeaderBytes))
	out := fmt.Appendf(make([]byte, 0, 160+len(body)),
		"HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), len(body))
	out = append(out, body...)
	if _, err := c.Conn.Write(out); err != nil {
		// The caller's bytes were not what went out, so no count of them
		// is meaningful; net/http closes the connection either way.
		return 0, err
	}
	return len(p), nil
}

// ReadFrom keeps sendfile and splice: net/http's response.ReadFrom uses
// them only when the connection itself is an io.ReaderFrom.
func (c *problemConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn is the connection wrapped, for a handler that takes the
// connection over (a watch stream) and tunes its socket.
func (c *problemConn) NetConn() net.Conn { return c.Conn }

// CloseWrite lets net/http half-close after a 431, so the client reads the
// answer before the connection is reset.
func (c *problemConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("httpapi: %T cannot close for writing", c.Conn)
}

// parseCanned reports whether p is exactly one canned answer, its status
// and, for answers built from net/http's statusError, the error text
// (otherwise ""). It never allocates, as it sees every response's first
// write.
func parseCanned(p []byte) (status int, text string, ok bool) {
	if string(p) == cannedPlainToTLS {
		return http.StatusBadRequest, cannedPlainToTLS, true
	}
	rest, found := bytes.CutPrefix(p, []byte(cannedStatus))
	if !found {
		return 0, "", false
	}
	end := bytes.IndexByte(rest, '\r')
	if end < 0 || !bytes.HasPrefix(rest[end:], []byte(cannedHeaders)) {
		return 0, "", false
	}
	line, body := rest[:end], rest[end+len(cannedHeaders):]
	if len(line) < 5 || line[3] != ' ' || bytes.IndexByte(line, '\n') >= 0 {
		return 0, "", false
	}
	code := 0
	for _, d := range line[:3] {
		if d < '0' || d > '9' {
			return 0, "", false
		}
		code = code*10 + int(d-'0')
	}
	reason := http.StatusText(code)
	if code < 400 || reason == "" || !bytes.HasPrefix(line[4:], []byte(reason)) {
		return 0, "", false
	}
	after := line[4+len(reason):]
	switch {
	case len(after) == 0 && code == http.StatusNotImplemented:
		return code, "", string(body) == cannedBadTE
	case len(after) == 0:
		return code, "", bytes.Equal(body, line)
	case len(after) > 2 && after[0] == ':' && after[1] == ' ' && bytes.Equal(body, line):
		return code, string(after[2:]), true
	}
	return 0, "", false
}

// cannedDetail turns a canned answer into what the client should do.
func cannedDetail(status int, text string, maxHeaderBytes int) string {
	switch {
	case status == http.StatusRequestHeaderFieldsTooLarge:
		return "request headers are larger than this server accepts (" + byteSize(maxHeaderBytes) + "); send fewer or smaller headers"
	case status == http.StatusNotImplemented:
		return "the request uses a Transfer-Encoding this server does not support; send the body with Content-Length or with Transfer-Encoding: chunked alone"
	case status == http.StatusHTTPVersionNotSupported:
		return "this server does not speak the HTTP version in the request line; send the request as HTTP/1.1"
	case text == cannedPlainToTLS:
		return "this port speaks HTTPS; send the request with https:// instead of http://"
	}
	switch text {
	case "":
		return "the request line or headers are not valid HTTP/1.1; check what the client sends"
	case "missing required Host header":
		return "the request has no Host header, which HTTP/1.1 requires; send Host with the server's name"
	case "malformed Host header":
		return "the Host header is not a valid host name; send the server's host name, with its port if not the default"
	case "invalid header name":
		return "a request header name has characters HTTP does not allow; fix or remove that header"
	case "invalid header value":
		return "a request header value has characters HTTP does not allow, such as control characters; fix or remove that header"
	}
	return "the server could not read the request (" + text + "); fix it and send it again"
}

// byteSize writes n the way people state limits: 64 KiB, 1 MiB.
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}
