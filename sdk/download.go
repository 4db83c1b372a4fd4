package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
)

// Download fetches the hotpatch file h names into the state directory and
// returns its path once it is complete and hashes to h.SHA256. It resumes
// what an earlier call left in downloads/<sha256>.part, and a file already
// complete is reused after hashing it again. Apply calls it; an app may
// call it ahead (say, on Wi-Fi) so that Apply later needs no network.
//
// It never keeps more than h.Size bytes (ErrTooLong) nor a file of
// another hash (ErrHashMismatch); both discard what was downloaded. An
// interrupted transfer keeps its bytes for the next call.
func (c *Client) Download(ctx context.Context, h *HotpatchInstruction) (string, error) {
	if h == nil {
		return "", refusal(ErrMalformedAnswer, "no hotpatch instruction")
	}
	c.install.Lock()
	defer c.install.Unlock()
	return c.download(ctx, h.remote(c.maxPatch))
}

// remote is a file an answer names, to download: what it is (for
// messages), where, its size and SHA-256, and the most this app accepts
// of such a file.
type remote struct {
	what, URL, SHA256 string
	Size, Max         int64
}

// checkFile checks what an answer says of a file before anything is
// fetched: the hash names a file on disk, so it must be exactly hex.
func checkFile(h remote) error {
	switch {
	case !mds.ValidSHA256(h.SHA256):
		return refusal(ErrMalformedAnswer, "the %s's sha256 %q is not 64 lowercase hex digits", h.what, h.SHA256)
	case h.Size <= 0:
		return refusal(ErrMalformedAnswer, "the %s's size %d is not positive", h.what, h.Size)
	case h.Size > h.Max:
		return refusal(ErrTooLong, "the %s is %d bytes, more than the %d this app accepts", h.what, h.Size, h.Max)
	case h.URL == "":
		return refusal(ErrMalformedAnswer, "the answer gives the %s no url", h.what)
	}
	return nil
}

// download is Download of any file; the caller holds install.
func (c *Client) download(ctx context.Context, h remote) (string, error) {
	if err := checkFile(h); err != nil {
		return "", err
	}
	u, err := c.resolve(h.URL)
	if err != nil {
		return "", refusal(ErrMalformedAnswer, "the %s url %q: %v", h.what, h.URL, err)
	}
	final := c.path(downloadsDir + "/" + h.SHA256)
	// A complete file got there verified, but storage can fail, and a
	// wrong file would fail later as a bad signature, blaming the team.
	switch ok, err := fileMatches(final, h.Size, h.SHA256); {
	case err != nil:
		return "", err
	case ok:
		return final, nil
	}
	if err := os.Remove(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	part := final + partSuffix
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("sdk: creating the download: %w", err)
	}
	keep := false
	defer func() {
		f.Close()
		if !keep {
			os.Remove(part)
		}
	}()
	sum := sha256.New()
	have, err := resumeFrom(f, h.Size, sum)
	if err != nil {
		return "", err
	}
	// resumed: f holds bytes from before this call, which are not
	// trusted as much as what the server just sent.
	resumed := have > 0
	for {
		if have < h.Size {
			have, err = c.fetch(ctx, u, h, f, sum, have, &resumed)
			if err != nil {
				// Only an interrupted transfer is worth resuming; the
				// refusals discard what they refused.
				keep = !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrHashMismatch)
				if keep {
					f.Sync()
				}
				return "", err
			}
		}
		if hex.EncodeToString(sum.Sum(nil)) == h.SHA256 {
			break
		}
		if !resumed {
			return "", refusal(ErrHashMismatch, "the file from %s hashes to %x, the answer says %s", u, sum.Sum(nil), h.SHA256)
		}
		// The kept bytes may be what is wrong (a crash can leave a
		// partial file with a hole): before blaming the server, fetch
		// the whole file once more.
		if err := restart(f, sum); err != nil {
			return "", err
		}
		have, resumed = 0, false
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(part, final); err != nil {
		return "", err
	}
	keep = true
	if err := atomicfile.SyncDir(c.path(downloadsDir)); err != nil {
		return "", err
	}
	return final, nil
}

// resumeFrom hashes what a partial download holds and leaves f at its end;
// a part longer than the file can be is started over.
func resumeFrom(f *os.File, size int64, sum hash.Hash) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() > size {
		return 0, restart(f, sum)
	}
	n, err := io.Copy(sum, f)
	if err != nil {
		return 0, fmt.Errorf("sdk: reading the partial download: %w", err)
	}
	return n, nil
}

// restart empties a partial download.
func restart(f *os.File, sum hash.Hash) error {
	sum.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// errStalled is the cause of a transfer the SDK abandoned.
var errStalled = errors.New("no data arrived for " + stallTimeout.String())

// fetch downloads the rest of the file from byte have, appending to f and
// sum, and returns how many bytes f then holds. It asks for a range when
// it has some, with If-Range on the blob's ETag so that a server whose
// file changed sends it whole (a 200), which is written from the start;
// then it clears *resumed.
func (c *Client) fetch(ctx context.Context, u string, h remote, f *os.File, sum hash.Hash, have int64, resumed *bool) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return have, err
		}
		if have > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
			req.Header.Set("If-Range", `"`+h.SHA256+`"`)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return have, transferError(ctx, err, have, h.Size)
		}
		start, total, err := contentRange(resp, have, c.now())
		if err == errStartOver && attempt == 0 {
			// The server cannot continue the part it has: download
			// the whole file.
			resp.Body.Close()
			if err := restart(f, sum); err != nil {
				return 0, err
			}
			have, *resumed = 0, false
			continue
		}
		if err != nil {
			resp.Body.Close()
			return have, err
		}
		if start == 0 && have > 0 {
			// A 200 to a range request: the file is sent whole.
			if err := restart(f, sum); err != nil {
				resp.Body.Close()
				return 0, err
			}
			have, *resumed = 0, false
		}
		if total > h.Size {
			resp.Body.Close()
			return have, refusal(ErrTooLong, "the server's file is %d bytes, the answer says %d", total, h.Size)
		}
		if total >= 0 && total < h.Size {
			resp.Body.Close()
			return have, refusal(ErrHashMismatch, "the server's file is %d bytes, the answer says %d: it is another file", total, h.Size)
		}
		// One byte more than may come tells an endless body from a
		// complete one.
		body := &stallReader{r: resp.Body, timer: stall}
		n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(body, h.Size-have+1))
		resp.Body.Close()
		have += n
		switch {
		case have > h.Size:
			return have, refusal(ErrTooLong, "the server sent more than the %d bytes the answer says", h.Size)
		case err != nil:
			return have, transferError(ctx, err, have, h.Size)
		case have < h.Size:
			return have, fmt.Errorf("the download ended at %d of %d bytes; call again to resume: %w", have, h.Size, io.ErrUnexpectedEOF)
		}
		return have, nil
	}
}

// errStartOver: the server refused the range asked (416).
var errStartOver = errors.New("range not satisfiable")

// contentRange checks a download's status and returns where its body
// starts in the file and the file's length, -1 when not told. A 206 must
// continue exactly at have.
func contentRange(resp *http.Response, have int64, now time.Time) (start, total int64, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		return 0, resp.ContentLength, nil
	case http.StatusPartialContent:
		// Content-Range: bytes <first>-<last>/<total or *>
		cr := resp.Header.Get("Content-Range")
		spec, ok := strings.CutPrefix(cr, "bytes ")
		r, size, ok2 := strings.Cut(spec, "/")
		first, last, ok3 := strings.Cut(r, "-")
		a, err1 := strconv.ParseInt(first, 10, 64)
		b, err2 := strconv.ParseInt(last, 10, 64)
		if !ok || !ok2 || !ok3 || err1 != nil || err2 != nil || b < a {
			return 0, 0, refusal(ErrMalformedAnswer, "a 206 with Content-Range %q", cr)
		}
		if a != have {
			return 0, 0, refusal(ErrMalformedAnswer, "asked for the file from byte %d, the server sent it from byte %d", have, a)
		}
		total = -1
		if size != "*" {
			if total, err = strconv.ParseInt(size, 10, 64); err != nil {
				return 0, 0, refusal(ErrMalformedAnswer, "a 206 with Content-Range %q", cr)
			}
		}
		return a, total, nil
	case http.StatusRequestedRangeNotSatisfiable:
		if have > 0 {
			return 0, 0, errStartOver
		}
	}
	if resp.StatusCode >= 400 {
		return 0, 0, readProblem(resp, now)
	}
	return 0, 0, refusal(ErrMalformedAnswer, "a download answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
}

// transferError says why a transfer stopped, and that it can resume.
func transferError(ctx context.Context, err error, have, size int64) error {
	if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
		err = cause
	}
	return fmt.Errorf("the download stopped at %d of %d bytes (%w); call again to resume", have, size, err)
}

// stallReader pushes a stall deadline back whenever data arrives.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(stallTimeout)
	}
	return n, err
}

// fileMatches reports whether path exists with the size and SHA-256 given.
func fileMatches(path string, size int64, want string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != size {
		return false, err
	}
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(sum.Sum(nil)) == want, nil
}
