package sdk

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// WatchConfig tunes Watch. The zero value of a field takes its default.
type WatchConfig struct {
	// FirstBackoff and MaxBackoff bound the wait before reconnecting after
	// a failure: it doubles from the first to the last, each wait drawn
	// with full jitter.
	FirstBackoff, MaxBackoff time.Duration
	// FallbackAfter is how many failures in a row make Watch check
	// instead (a network or node that cannot stream), before it tries to
	// watch again.
	FallbackAfter int
	// Silence is how long a stream may go without a byte (the server
	// sends heartbeats) before it is taken for dead and reconnected.
	Silence time.Duration
}

// Defaults of WatchConfig, as docs/protocol.md recommends.
const (
	DefaultFirstBackoff  = time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultFallbackAfter = 3
	DefaultSilence       = time.Minute
)

// maxEvent bounds one event of a stream: an answer and its signature.
const maxEvent = maxAnswerBody + 4<<10

// Watch keeps a watch open and calls handle with every answer the server
// sends, verified as Check verifies a 200 (and stored), until ctx ends.
// The current answer comes first, then one each time the device's answer
// changes; the caller acts on it as after a check (Apply). When the
// device state the watch was opened with changes (a patch applied and
// launched, a rollback), Watch opens a new one with the new state.
//
// An error from handle is reported to onError, and the answer is handed
// again after a backoff: the watch reopens without naming it, so the
// server sends it anew. A stream that ends or breaks is reopened after a
// jittered exponential backoff; a node shutting down says when to come
// back, which Watch honours up to MaxBackoff. Reopened after an answer
// was handled, the watch names it (Last-Event-ID), and the server sends
// nothing until it changes. When the node refuses the watch (it is full,
// or shutting down) or ends it with a problem, or after FallbackAfter
// failures in a row, Watch checks instead and hands handle what the
// check returns (a 304's stored answer too), then tries to watch again
// after the backoff (or the node's Retry-After). Refused answers and the
// failures Watch recovers from are reported to onError, if given. A
// refusal that ends watching for good (an unknown app, said by a check)
// is returned.
func (c *Client) Watch(ctx context.Context, cfg WatchConfig, handle func(*Answer) error, onError func(error)) error {
	cfg = cfg.withDefaults()
	if onError == nil {
		onError = func(error) {}
	}
	w := &watching{c: c, cfg: cfg, handle: handle, onError: onError}
	failures := 0
	wait := cfg.FirstBackoff
	for ctx.Err() == nil {
		delivered, after, err := w.once(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case isFinal(err):
			return err
		}
		if delivered {
			failures, wait = 0, cfg.FirstBackoff
		}
		if after >= 0 && err == nil {
			// The node said when to come back, or the state moved: not a
			// failure.
			if !sleep(ctx, after) {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			onError(err)
		}
		failures++
		// A node that refuses the watch (full, shutting down) or ends it
		// with a problem says to check instead; so does a watch that
		// keeps failing. The check says whether the problem is final.
		_, refused := errors.AsType[*ServerError](err)
		_, ended := errors.AsType[*streamProblem](err)
		if refused || ended || failures >= cfg.FallbackAfter {
			a, err := c.Check(ctx)
			switch {
			case err == nil:
				w.hand(a)
			case isFinal(err):
				return err
			default:
				onError(err)
			}
		}
		var retry time.Duration
		if se, ok := errors.AsType[*ServerError](err); ok {
			retry = se.RetryAfter
		}
		if !sleep(ctx, max(rand.N(wait+1), retry)) {
			return ctx.Err()
		}
		wait = min(2*wait, cfg.MaxBackoff)
	}
	return ctx.Err()
}

func (cfg WatchConfig) withDefaults() WatchConfig {
	if cfg.FirstBackoff <= 0 {
		cfg.FirstBackoff = DefaultFirstBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.FallbackAfter <= 0 {
		cfg.FallbackAfter = DefaultFallbackAfter
	}
	if cfg.Silence <= 0 {
		cfg.Silence = DefaultSilence
	}
	return cfg
}

// streamProblem is a problem event: the node ended the stream. It is not
// final by itself, as the event is not signed: the check that follows
// says whether the request is refused for good.
type streamProblem struct{ err error }

func (e *streamProblem) Error() string { return "the server ended the watch: " + e.err.Error() }

// isFinal reports whether err ends watching: the server refused the
// request itself, which trying again will not change.
func isFinal(err error) bool {
	se, ok := errors.AsType[*ServerError](err)
	return ok && !se.Retryable()
}

// watching is one Watch call: what it was given, and the ETag of the
// last answer handle took without an error.
type watching struct {
	c       *Client
	cfg     WatchConfig
	handle  func(*Answer) error
	onError func(error)
	acted   string
}

// hand gives a to handle, and reports whether it took it.
func (w *watching) hand(a *Answer) bool {
	if err := w.handle(a); err != nil {
		w.acted = ""
		w.onError(err)
		return false
	}
	w.acted = a.ETag
	return true
}

// once opens one stream and reads it to its end. It reports whether an
// answer was handled, and how long to wait before reconnecting when the
// stream ended as it should (negative when it did not).
func (w *watching) once(ctx context.Context) (delivered bool, after time.Duration, err error) {
	c, cfg := w.c, w.cfg
	after = -1
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, sent, err := c.newRequest(ctx, "client/v1/watch")
	if err != nil {
		return false, after, err
	}
	// Name the answer held only if handle took it: otherwise the server
	// must send it again.
	if held := req.Header.Get("If-None-Match"); held != "" {
		req.Header.Del("If-None-Match")
		if held == w.acted {
			req.Header.Set("Last-Event-ID", held)
		}
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return false, after, fmt.Errorf("cannot reach the mds server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 400 {
			return false, after, readProblem(resp, c.now())
		}
		return false, after, refusal(ErrMalformedAnswer, "a watch answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if mt := resp.Header.Get("Content-Type"); !strings.HasPrefix(mt, "text/event-stream") {
		return false, after, refusal(ErrMalformedAnswer, "a watch answered %s, not an event stream", mt)
	}
	// A stream silent past cfg.Silence is dead: the server sends
	// heartbeats more often than that.
	var silent atomic.Bool
	alive := time.AfterFunc(cfg.Silence, func() { silent.Store(true); cancel() })
	defer alive.Stop()
	r := bufio.NewReaderSize(&touchReader{r: resp.Body, touch: func() { alive.Reset(cfg.Silence) }}, 4096)
	for {
		ev, err := readEvent(r)
		switch {
		case silent.Load():
			return delivered, -1, fmt.Errorf("the watch stream was silent for %s", cfg.Silence)
		case err != nil && (errors.Is(err, io.EOF) || ctx.Err() != nil):
			return delivered, -1, errors.New("the watch stream ended")
		case err != nil:
			return delivered, -1, err
		}
		switch ev.name {
		case "answer":
			if c.stateMoved(&sent) {
				return delivered, 0, nil // computed for a state left: watch again
			}
			i := strings.LastIndexByte(ev.data, '\n')
			switch {
			case i < 0:
				w.onError(refusal(ErrMalformedAnswer, "an answer event without its signature line"))
				continue
			case i+1 > maxAnswerBody:
				w.onError(refusal(ErrMalformedAnswer, "the answer is longer than %d bytes", maxAnswerBody))
				continue
			}
			a, err := c.accept([]byte(ev.data[:i+1]), ev.data[i+1:], ev.id, &sent)
			if err != nil {
				w.onError(err)
				continue
			}
			if !w.hand(a) {
				return delivered, -1, nil // reopen after a backoff: the answer comes again
			}
			delivered = true
			if c.stateMoved(&sent) {
				return delivered, 0, nil // watch again, with the new state
			}
		case "reconnect":
			var v struct {
				AfterMS int64 `json:"after_ms"`
			}
			json.Unmarshal([]byte(ev.data), &v)
			// The event is not signed: a delay past the longest backoff is
			// not believed, so no one can put the device to sleep.
			return delivered, min(time.Duration(max(v.AfterMS, 0))*time.Millisecond, cfg.MaxBackoff), nil
		case "problem":
			return delivered, -1, &streamProblem{problemError(ev.data, c.now())}
		}
	}
}

// stateMoved reports whether what a check would send now differs from
// the state sent.
func (c *Client) stateMoved(sent *AnswerDevice) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	dev := c.cfg.Device
	dev.Hotpatch = c.reported()
	now := boundTo(&dev)
	return !now.equal(sent)
}

// sse is one Server-Sent Event.
type sse struct {
	id, name, data string
}

// readEvent reads the next event: its fields up to an empty line. Events
// without data (heartbeats, a retry field alone) are skipped.
func readEvent(r *bufio.Reader) (sse, error) {
	var ev sse
	var data []string
	size := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ev, err
		}
		if size += len(line); size > maxEvent {
			return ev, refusal(ErrMalformedAnswer, "an event longer than %d bytes", maxEvent)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if data != nil {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			ev, size = sse{}, 0
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		}
	}
}

// problemError is a problem event as the error a check would give.
func problemError(data string, now time.Time) error {
	resp := &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/problem+json"}},
		Body: io.NopCloser(strings.NewReader(data))}
	var p struct {
		Status int `json:"status"`
	}
	if json.Unmarshal([]byte(data), &p) == nil && p.Status >= 400 {
		resp.StatusCode = p.Status
	}
	return readProblem(resp, now)
}

// touchReader calls touch on every read that returns bytes.
type touchReader struct {
	r     io.Reader
	touch func()
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.touch()
	}
	return n, err
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
