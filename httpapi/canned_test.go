package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// cannedRender stands in for the real problem renderer.
func cannedRender(s int, d string) []byte {
	b, _ := json.Marshal(map[string]any{"title": http.StatusText(s), "status": s, "detail": d})
	return b
}

type problemDoc struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func listen127(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveCanned serves h on 127.0.0.1; with wrap, through newProblemListener.
func serveCanned(t *testing.T, h http.Handler, maxHeaderBytes int, wrap func(net.Listener) net.Listener) string {
	t.Helper()
	ln := listen127(t)
	srv := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr
}

// rawExchange sends req as it is and reads until the server closes.
func rawExchange(t *testing.T, addr, req string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (after %q)", err, got)
	}
	return got
}

// assertProblem parses raw as one HTTP answer and checks it is a problem
// document for status whose detail mentions want.
func assertProblem(t *testing.T, raw []byte, method string, status int, want string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("not an HTTP answer: %v\n%q", err, raw)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v\n%q", err, raw)
	}
	if resp.StatusCode != status || resp.Proto != "HTTP/1.1" {
		t.Errorf("got %s %s, want HTTP/1.1 %d", resp.Proto, resp.Status, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if !resp.Close {
		t.Errorf("no Connection: close in %q", raw)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for a body of %d bytes", resp.ContentLength, len(body))
	}
	var doc problemDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, body)
	}
	if doc.Status != status || doc.Title != http.StatusText(status) || !strings.Contains(doc.Detail, want) {
		t.Errorf("got %+v, want status %d and a detail mentioning %q", doc, status, want)
	}
}

func TestCannedAnswersBecomeProblems(t *testing.T) {
	const limit = 1 << 10 // net/http allows 4096 bytes more than this
	wrap := func(ln net.Listener) net.Listener { return newProblemListener(ln, limit, cannedRender) }
	addr := serveCanned(t, http.NotFoundHandler(), limit, wrap)
	cases := []struct {
		name, req string
		status    int
		detail    string
	}{
		{"huge headers", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n",
			431, "(1 KiB); send fewer or smaller headers"},
		{"no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400, "no Host header"},
		{"malformed Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "Host header is not a valid host name"},
		{"control byte in a header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n", 400, "not valid HTTP/1.1"},
		{"bad request line", "GARBAGE\r\n\r\n", 400, "not valid HTTP/1.1"},
		{"gzip then chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "Transfer-Encoding"},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zstd\r\n\r\n", 501, "Transfer-Encoding"},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/1.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertProblem(t, rawExchange(t, addr, c.req), "GET", c.status, c.detail)
		})
	}
}

func TestCannedPlainHTTPToTLSBecomesProblem(t *testing.T) {
	var sawTLS atomic.Bool
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawTLS.Store(r.TLS != nil)
		io.WriteString(w, "secure")
	}))
	ts.Listener.Close()
	ln := listen127(t)
	ts.Listener = newProblemListener(ln, 0, cannedRender)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()

	raw := rawExchange(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	assertProblem(t, raw, "GET", 400, "https://")

	// The wrapper sits beneath TLS, so net/http still finds its *tls.Conn.
	resp, err := ts.Client().Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "secure" || !sawTLS.Load() {
		t.Errorf("HTTPS through the wrapper: body %q, handler saw TLS %v", body, sawTLS.Load())
	}
}

func TestCannedLeavesHandlerAnswersAlone(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef\r\n"), 64<<10) // 1.1 MiB, CR LF included
	mux := http.NewServeMux()
	noDate := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil // so two servers answer the same bytes
			h(w, r)
		}
	}
	mux.HandleFunc("/plain400", noDate(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
	}))
	mux.HandleFunc("/mimic", noDate(func(w http.ResponseWriter, r *http.Request) {
		// As close to a canned 431 as a handler gets.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		io.WriteString(w, "431 Request Header Fields Too Large")
	}))
	mux.HandleFunc("/ok", noDate(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fine")
	}))
	mux.HandleFunc("/stream", noDate(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for i := 0; i < len(big); i += 7000 {
			w.Write(big[i:min(i+7000, len(big))])
			if err := rc.Flush(); err != nil {
				t.Errorf("flush: %v", err)
				return
			}
		}
	}))
	mux.HandleFunc("/blob", noDate(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	}))
	plain := serveCanned(t, mux, 1<<10, nil)
	wrapped := serveCanned(t, mux, 1<<10, func(ln net.Listener) net.Listener {
		return newProblemListener(ln, 1<<10, cannedRender)
	})
	for _, path := range []string{"/plain400", "/mimic", "/ok", "/stream", "/blob"} {
		t.Run(path, func(t *testing.T) {
			req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
			want := rawExchange(t, plain, req)
			got := rawExchange(t, wrapped, req)
			if !bytes.Equal(got, want) {
				t.Fatalf("wrapped answer differs (%d vs %d bytes); starts %q", len(got), len(want), got[:min(len(got), 200)])
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(resp.Header.Get("Content-Type"), "problem") {
				t.Errorf("handler answer rewritten: %v", resp.Header)
			}
			if (path == "/stream" || path == "/blob") && !bytes.Equal(body, big) {
				t.Errorf("body of %d bytes, want %d", len(body), len(big))
			}
		})
	}
}

// spyConn records whether net/http sent a body through ReadFrom, which is
// where sendfile and splice live.
type spyConn struct {
	net.Conn
	readFrom *atomic.Int64
}

func (c spyConn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.Conn.(io.ReaderFrom).ReadFrom(r)
	c.readFrom.Add(n)
	return n, err
}

type spyListener struct {
	net.Listener
	readFrom *atomic.Int64
}

func (l spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return spyConn{Conn: c, readFrom: l.readFrom}, nil
}

func TestCannedWrapperKeepsReadFrom(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20)
	var readFrom atomic.Int64
	addr := serveCanned(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
	}), 0, func(ln net.Listener) net.Listener {
		return newProblemListener(spyListener{Listener: ln, readFrom: &readFrom}, 0, cannedRender)
	})
	raw := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !bytes.HasSuffix(raw, big) {
		t.Fatalf("body lost: %d bytes in all", len(raw))
	}
	// net/http writes the first 512 bytes with the header block.
	if n := readFrom.Load(); n != int64(len(big)-512) {
		t.Errorf("%d body bytes went through the connection's ReadFrom, want %d", n, len(big)-512)
	}
}

func TestCannedFormatsMatchExactly(t *testing.T) {
	const eh = cannedHeaders
	se := func(code int, text string) string {
		return fmt.Sprintf("HTTP/1.1 %d %s: %s%s%d %s: %s", code, http.StatusText(code), text, eh, code, http.StatusText(code), text)
	}
	cases := []struct {
		in     string
		status int
		text   string
	}{
		{"HTTP/1.1 431 Request Header Fields Too Large" + eh + "431 Request Header Fields Too Large", 431, ""},
		{"HTTP/1.1 400 Bad Request" + eh + "400 Bad Request", 400, ""},
		{fmt.Sprintf("HTTP/1.1 %d %s%sUnsupported transfer encoding", 501, "Not Implemented", eh), 501, ""},
		{se(400, "missing required Host header"), 400, "missing required Host header"},
		{se(505, "unsupported protocol version"), 505, "unsupported protocol version"},
		{se(400, "a text a future Go may add"), 400, "a text a future Go may add"},
		{cannedPlainToTLS, 400, cannedPlainToTLS},
		// Near misses: each differs from a canned answer in one way.
		{"HTTP/1.1 400 Bad Request" + eh + "400 Bad Request\n", 0, ""},
		{"HTTP/1.1 400 Bad Request" + eh + "400 Bad Reques", 0, ""},
		{"HTTP/1.1 400 Bad Request" + eh, 0, ""},
		{"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n400 Bad Request", 0, ""},
		{"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n400 Bad Request", 0, ""},
		{"HTTP/1.0 400 Bad Request" + eh + "400 Bad Request", 0, ""},
		{"HTTP/1.1 400 Bad request" + eh + "400 Bad request", 0, ""},
		{"HTTP/1.1 200 OK" + eh + "200 OK", 0, ""},
		{"HTTP/1.1 501 Not Implemented" + eh + "501 Not Implemented", 0, ""},
		{"HTTP/1.1 431 Request Header Fields Too Large" + eh + "Unsupported transfer encoding", 0, ""},
		{"HTTP/1.1 400 Bad Request: " + eh + "400 Bad Request: ", 0, ""},
		{"HTTP/1.1 4x0 Bad Request" + eh + "4x0 Bad Request", 0, ""},
		{cannedPlainToTLS[:len(cannedPlainToTLS)-1], 0, ""},
		{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine", 0, ""},
	}
	for _, c := range cases {
		status, text, ok := parseCanned([]byte(c.in))
		if ok != (c.status != 0) || ok && (status != c.status || text != c.text) {
			t.Errorf("parseCanned(%q) = %d, %q, %v; want %d, %q", c.in, status, text, ok, c.status, c.text)
		}
	}
}

// discardConn accepts writes and does nothing else.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

func TestCannedCheckDoesNotAllocate(t *testing.T) {
	c := &problemConn{Conn: discardConn{}, l: &problemListener{maxHeaderBytes: 1 << 16, render: cannedRender}}
	writes := [][]byte{
		[]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}"),
		[]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Length: 12\r\n\r\nbad request\n"),
		[]byte("HTTP/1.1 431 Request Header Fields Too Large" + cannedHeaders + "431 Request Header Fields Too Larg"),
		bytes.Repeat([]byte("body"), 1024),
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, p := range writes {
			if n, err := c.Write(p); n != len(p) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of ordinary writes, want 0", allocs)
	}
}

func TestCannedByteSize(t *testing.T) {
	for n, want := range map[int]string{64 << 10: "64 KiB", 1 << 20: "1 MiB", 3 << 20: "3 MiB", 1536: "1536 bytes", 1000: "1000 bytes", 3 << 19: "1536 KiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func BenchmarkCannedCheckOrdinaryWrite(b *testing.B) {
	c := &problemConn{Conn: discardConn{}, l: &problemListener{maxHeaderBytes: 1 << 16, render: cannedRender}}
	p := []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 12\r\n\r\nbad request\n")
	b.ReportAllocs()
	for b.Loop() {
		c.Write(p)
	}
}
