package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rangeCases = []struct {
	header string
	size   int64
	status int
	detail string // part of the detail, when status is an error
}{
	{"", 100, 0, ""},
	{"bytes=0-4", 100, 0, ""},
	{"bytes=0-0", 100, 0, ""},
	{"bytes=99-99", 100, 0, ""},
	{"bytes=0-999", 100, 0, ""},
	{"bytes=90-", 100, 0, ""},
	{"bytes=-5", 100, 0, ""},
	{"bytes=-500", 100, 0, ""},
	{"bytes=0-1,10-11", 100, 0, ""},
	{"bytes=0-1, 10-11,\t20-21", 100, 0, ""},
	{"bytes=0-1,,10-11", 100, 0, ""},
	{"bytes=0-5,200-300", 100, 0, ""},
	{"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14", 100, 0, ""},
	{"bytes=0-", 0, 416, "0 bytes long"},

	{"bytes=-0", 100, 416, "zero bytes"},
	{"bytes=-00", 100, 416, "zero bytes"},
	{"bytes=-0", 0, 416, "zero bytes"},
	{"bytes=5-2", 100, 416, "not a valid byte range"},
	{"bytes=100-", 100, 416, "100 bytes long"},
	{"bytes=100-200", 100, 416, "100 bytes long"},
	{"bytes=100-,150-", 100, 416, "100 bytes long"},
	{"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16", 100, 416, "more than 8 ranges"},
	{"bytes=0-1" + strings.Repeat(",", 9), 100, 0, ""}, // empty elements are no ranges
	{strings.Repeat(",", 9) + "bytes=0-1", 100, 416, "not a valid byte range"},
	{"bytes=0-1" + strings.Repeat(",", 40), 100, 416, "list elements"},
	{"bytes=" + strings.Repeat("0-0,", 4000), 100, 416, "more than 8 ranges"},
	{"bytes=", 100, 416, "not a valid byte range"},
	{"bytes=,", 100, 416, "not a valid byte range"},
	{"garbage", 100, 416, "not a valid byte range"},
	{"bytes 0-4", 100, 416, "not a valid byte range"},
	{"=0-4", 100, 416, "not a valid byte range"},
	{"by tes=0-4", 100, 416, "not a valid byte range"},
	{"bytes=abc", 100, 416, "not a valid byte range"},
	{"bytes=0", 100, 416, "not a valid byte range"},
	{"bytes=-", 100, 416, "not a valid byte range"},
	{"bytes=--5", 100, 416, "not a valid byte range"},
	{"bytes=+1-2", 100, 416, "not a valid byte range"},
	{"bytes=1-+2", 100, 416, "not a valid byte range"},
	{"bytes=1-2-3", 100, 416, "not a valid byte range"},
	{"bytes=0 - 4", 100, 416, "not a valid byte range"},
	{"bytes=0-4,x", 100, 416, "not a valid byte range"},
	{"bytes=99999999999999999999-", 100, 416, "not a valid byte range"},
	{"bytes=0-99999999999999999999", 100, 416, "not a valid byte range"},

	{"items=0-4", 100, 200, ""},
	{"Bytes=0-4", 100, 200, ""},
	{"bytes=0-5,-0", 100, 200, ""},
	{"bytes=-5", 0, 200, ""},
	{"bytes=-5,0-", 0, 200, ""},
}

func TestCheckRange(t *testing.T) {
	for _, c := range rangeCases {
		st, d := checkRange(c.header, c.size)
		if st != c.status {
			t.Errorf("checkRange(%.40q, %d) = %d, %q; want %d", c.header, c.size, st, d, c.status)
			continue
		}
		if st >= 400 && !strings.Contains(d, c.detail) || st < 400 && d != "" {
			t.Errorf("checkRange(%.40q, %d) detail %q, want one mentioning %q", c.header, c.size, d, c.detail)
		}
	}
}

// TestCheckRangeLeavesServeContentSound runs every header checkRange lets
// through (0) or tells to drop (200) through ServeContent and checks that
// what comes out is a well-formed 200 or 206.
func TestCheckRangeLeavesServeContentSound(t *testing.T) {
	for _, c := range rangeCases {
		st, _ := checkRange(c.header, c.size)
		if st >= 400 {
			continue
		}
		r := httptest.NewRequest("GET", "/", nil)
		if st == 0 && c.header != "" {
			r.Header.Set("Range", c.header)
		}
		w := httptest.NewRecorder()
		content := bytes.Repeat([]byte("x"), int(c.size))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(content))
		switch w.Code {
		case http.StatusOK:
			if w.Body.Len() != int(c.size) {
				t.Errorf("%q: 200 with %d bytes, want %d", c.header, w.Body.Len(), c.size)
			}
		case http.StatusPartialContent:
			for _, cr := range contentRanges(t, w.Result()) {
				if !soundContentRange(cr, c.size) {
					t.Errorf("%q: 206 with Content-Range %q", c.header, cr)
				}
			}
		default:
			t.Errorf("%q: ServeContent answered %d", c.header, w.Code)
		}
	}
}

// contentRanges returns the Content-Range of a 206, or of each of its parts.
func contentRanges(t *testing.T, resp *http.Response) []string {
	t.Helper()
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		return []string{resp.Header.Get("Content-Range")}
	}
	var out []string
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for range maxRanges + 1 {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Header.Get("Content-Range"))
	}
	t.Fatalf("more than %d parts", maxRanges)
	return nil
}

func soundContentRange(cr string, size int64) bool {
	var first, last, total int64
	if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil {
		return false
	}
	return cr == fmt.Sprintf("bytes %d-%d/%d", first, last, total) && 0 <= first && first <= last && last < size && total == size
}

var (
	rangeBlob    = []byte(strings.Repeat("0123456789", 10))
	rangeModTime = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
)

// serveRangeBlob is the blob handler the functions are written for.
func serveRangeBlob(w http.ResponseWriter, r *http.Request) {
	size := int64(len(rangeBlob))
	h := w.Header()
	h.Set("ETag", `"blob"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	switch st, detail := checkRange(r.Header.Get("Range"), size); st {
	case 0:
	case http.StatusOK:
		r.Header.Del("Range")
	default:
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		h.Del("ETag")
		h.Set("Content-Type", "application/problem+json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(st)
		w.Write(cannedRender(st, detail))
		return
	}
	http.ServeContent(problemOnError(w, cannedRender), r, "", rangeModTime, bytes.NewReader(rangeBlob))
}

func startRangeServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = listen127(t)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

func rangeDo(t *testing.T, ts *httptest.Server, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// checkProblemAnswer checks a problem document answer; body is empty for HEAD.
func checkProblemAnswer(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if et := resp.Header.Get("ETag"); et != "" {
		t.Errorf("ETag %q on an error", et)
	}
	if resp.Request.Method == "HEAD" {
		if len(body) != 0 {
			t.Errorf("HEAD answered a body: %q", body)
		}
		return
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}
	var doc problemDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not JSON: %q", body)
	}
	if doc.Status != status || doc.Title != http.StatusText(status) || doc.Detail == "" {
		t.Errorf("problem %+v for %d", doc, status)
	}
}

func TestRangeBlobDownloads(t *testing.T) {
	ts := startRangeServer(t, serveRangeBlob)
	good := []struct {
		rng, body, contentRange string
	}{
		{"bytes=0-4", "01234", "bytes 0-4/100"},
		{"bytes=-5", "56789", "bytes 95-99/100"},
		{"bytes=95-", "56789", "bytes 95-99/100"},
		{"bytes=0-5,200-300", "012345", "bytes 0-5/100"},
	}
	for _, g := range good {
		resp, body := rangeDo(t, ts, "GET", "/", "Range", g.rng)
		if resp.StatusCode != 206 || string(body) != g.body || resp.Header.Get("Content-Range") != g.contentRange {
			t.Errorf("%s: %d %q Content-Range %q; want 206 %q %q", g.rng, resp.StatusCode, body, resp.Header.Get("Content-Range"), g.body, g.contentRange)
		}
	}

	resp, body := rangeDo(t, ts, "GET", "/", "Range", "bytes=0-1,12-13")
	if resp.StatusCode != 206 {
		t.Fatalf("multi-range: %d", resp.StatusCode)
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		t.Fatalf("multi-range Content-Type %q", mt)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, want := range []struct{ cr, data string }{{"bytes 0-1/100", "01"}, {"bytes 12-13/100", "23"}} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		data, _ := io.ReadAll(p)
		if p.Header.Get("Content-Range") != want.cr || string(data) != want.data {
			t.Errorf("part %d: %q %q, want %q %q", i, p.Header.Get("Content-Range"), data, want.cr, want.data)
		}
	}

	for _, rng := range []string{"items=0-4", "bytes=0-5,-0"} {
		resp, body := rangeDo(t, ts, "GET", "/", "Range", rng)
		if resp.StatusCode != 200 || !bytes.Equal(body, rangeBlob) {
			t.Errorf("%s: %d with %d bytes, want the whole blob", rng, resp.StatusCode, len(body))
		}
	}

	bad := []string{"bytes=-0", "bytes=5-2", "bytes=100-", "bytes=" + strings.Repeat("0-0,", 9), "garbage"}
	for _, method := range []string{"GET", "HEAD"} {
		for _, rng := range bad {
			t.Run(method+" "+rng, func(t *testing.T) {
				resp, body := rangeDo(t, ts, method, "/", "Range", rng)
				checkProblemAnswer(t, resp, body, 416)
				if cr := resp.Header.Get("Content-Range"); cr != "bytes */100" {
					t.Errorf("Content-Range %q", cr)
				}
			})
		}
	}
}

func TestRangePreconditionsAndHEAD(t *testing.T) {
	ts := startRangeServer(t, serveRangeBlob)
	past := rangeModTime.Add(-time.Hour).Format(http.TimeFormat)
	for _, method := range []string{"GET", "HEAD"} {
		for _, pre := range [][]string{{"If-Match", `"other"`}, {"If-Unmodified-Since", past}, {"If-Match", `"other"`, "Range", "bytes=0-4"}} {
			t.Run(method+" "+strings.Join(pre, " "), func(t *testing.T) {
				resp, body := rangeDo(t, ts, method, "/", pre...)
				checkProblemAnswer(t, resp, body, http.StatusPreconditionFailed)
				if lm := resp.Header.Get("Last-Modified"); lm != "" {
					t.Errorf("Last-Modified %q on an error", lm)
				}
			})
		}
	}

	resp, body := rangeDo(t, ts, "GET", "/", "If-None-Match", `"blob"`)
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != `"blob"` {
		t.Errorf("If-None-Match: %d %q ETag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	resp, body = rangeDo(t, ts, "GET", "/", "If-Match", `"blob"`, "Range", "bytes=0-1")
	if resp.StatusCode != 206 || string(body) != "01" {
		t.Errorf("If-Match that holds: %d %q", resp.StatusCode, body)
	}

	resp, body = rangeDo(t, ts, "HEAD", "/")
	if resp.StatusCode != 200 || resp.ContentLength != 100 || len(body) != 0 || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: %d Content-Length %d body %q Accept-Ranges %q", resp.StatusCode, resp.ContentLength, body, resp.Header.Get("Accept-Ranges"))
	}
	resp, _ = rangeDo(t, ts, "HEAD", "/", "Range", "bytes=10-14")
	if resp.StatusCode != 206 || resp.ContentLength != 5 || resp.Header.Get("Content-Range") != "bytes 10-14/100" {
		t.Errorf("HEAD with Range: %d Content-Length %d Content-Range %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Range"))
	}
}

// TestProblemOnErrorOverServeContent skips checkRange, so the 416 is
// ServeContent's own, in its plain text, until the wrapper replaces it.
func TestProblemOnErrorOverServeContent(t *testing.T) {
	ts := startRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"blob"`)
		http.ServeContent(problemOnError(w, cannedRender), r, "", rangeModTime, bytes.NewReader(rangeBlob))
	})
	resp, body := rangeDo(t, ts, "GET", "/", "Range", "bytes=100-")
	checkProblemAnswer(t, resp, body, 416)
	if cr := resp.Header.Get("Content-Range"); cr != "bytes */100" {
		t.Errorf("Content-Range %q", cr)
	}
	if bytes.Contains(body, []byte("overlap")) {
		t.Errorf("ServeContent's own text leaked: %q", body)
	}
}

// readFromRecorder is a ResponseRecorder that, like net/http's own
// ResponseWriter, can take a body through ReadFrom.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom int64
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseRecorder, src)
	r.readFrom += n
	return n, err
}

func TestProblemOnErrorWriter(t *testing.T) {
	t.Run("error", func(t *testing.T) {
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		w := problemOnError(rec, cannedRender)
		w.Header().Set("Last-Modified", rangeModTime.Format(http.TimeFormat))
		w.Header().Set("Repr-Digest", "sha-256=:AAAA:")
		http.Error(w, "seeker can't seek", http.StatusInternalServerError)
		w.(io.ReaderFrom).ReadFrom(strings.NewReader("more plain text"))
		res := rec.Result()
		body := rec.Body.Bytes()
		if res.StatusCode != 500 || res.Header.Get("Content-Type") != "application/problem+json" || res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Last-Modified") != "" || res.Header.Get("Repr-Digest") != "" {
			t.Errorf("%d %v", res.StatusCode, res.Header)
		}
		if res.Header.Get("Content-Length") != strconv.Itoa(len(body)) || rec.readFrom != 0 {
			t.Errorf("Content-Length %q for %d bytes; %d bytes read from after the error", res.Header.Get("Content-Length"), len(body), rec.readFrom)
		}
		var doc problemDoc
		if err := json.Unmarshal(body, &doc); err != nil || doc.Status != 500 || strings.Contains(doc.Detail, "seek") {
			t.Errorf("body %q (%v)", body, err)
		}
	})
	t.Run("success", func(t *testing.T) {
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		w := problemOnError(rec, cannedRender)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusPartialContent)
		io.WriteString(w, "abc")
		n, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("def"))
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController cannot reach the writer: %v", err)
		}
		if n != 3 || err != nil || rec.readFrom != 3 {
			t.Errorf("ReadFrom = %d, %v; the wrapped writer's ReadFrom took %d bytes", n, err, rec.readFrom)
		}
		if rec.Code != 206 || rec.Body.String() != "abcdef" || rec.Header().Get("Content-Type") != "text/plain" || !rec.Flushed {
			t.Errorf("%d %q %v flushed %v", rec.Code, rec.Body.String(), rec.Header(), rec.Flushed)
		}
	})
	t.Run("later status", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := problemOnError(rec, cannedRender)
		io.WriteString(w, "body")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, " more")
		if rec.Code != 200 || rec.Body.String() != "body more" {
			t.Errorf("after a 200 the writer changed the answer: %d %q", rec.Code, rec.Body.String())
		}
	})
}
