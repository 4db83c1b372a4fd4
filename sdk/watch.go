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
// sends, verified as Check verifies a 200 (and stored), until ctx ends or
// handle returns an error, which Watch returns. An answer usually comes
// first, then one each time the device's answer changes; the caller acts
// on it as after a check (Apply). When the device state the watch was
// opened with changes (a patch applied and launched, a rollback), Watch
// opens a new one with the new state.
//
// A stream that ends or breaks is reopened after a jittered exponential
// backoff; a node shutting down says when to come back, which Watch
// honours. When the node refuses the watch (it is full, or shutting
// down), or after FallbackAfter failures in a row, it checks instead, and
// calls handle with what the check returns (a 304's stored answer too),
// then tries to watch again after the backoff (or the node's
// Retry-After). A refused answer is
// reported to onError, if given, and the stream carries on; so are the
// failures Watch recovers from. A problem that ends the watch for good
// (an unknown app) is returned.
func (c *Client) Watch(ctx context.Context, cfg WatchConfig, handle func(*Answer) error, onError func(error)) error {
	cfg = cfg.withDefaults()
	if onError == nil {
		onError = func(error) {}
	}
	failures := 0
	wait := cfg.FirstBackoff
	for ctx.Err() == nil {
		delivered, after, err := c.watchOnce(ctx, cfg, handle, onError)
		var handled *handlerError
		switch {
		case errors.As(err, &handled):
			return handled.err
		case ctx.Err() != nil:
			return ctx.Err()
		case isFinal(err):
			return err
		}
		if delivered {
			failures, wait = 0, cfg.FirstBackoff
		}
		if after >= 0 {
			// The node said when to come back: not a failure.
			if !sleep(ctx, after) {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			onError(err)
		}
		failures++
		// A node that refuses the watch (full, shutting down) says to
		// check instead; so does a watch that keeps failing.
		_, refused := errors.AsType[*ServerError](err)
		if refused || failures >= cfg.FallbackAfter {
			a, err := c.Check(ctx)
			switch {
			case err == nil:
				if err := handle(a); err != nil {
					return err
				}
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

// handlerError carries handle's error out of a stream.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// isFinal reports whether err ends watching: the server refused the
// request itself, which trying again will not change.
func isFinal(err error) bool {
	se, ok := errors.AsType[*ServerError](err)
	return ok && !se.Retryable()
}

// watchOnce opens one stream and reads it to its end. It reports whether
// an answer was delivered, and how long the server asked to wait before
// reconnecting (negative when it did not).
func (c *Client) watchOnce(ctx context.Context, cfg WatchConfig, handle func(*Answer) error, onError func(error)) (delivered bool, after time.Duration, err error) {
	after = -1
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, sent, err := c.newRequest(ctx, "client/v1/watch")
	if err != nil {
		return false, after, err
	}
	if etag := req.Header.Get("If-None-Match"); etag != "" {
		req.Header.Del("If-None-Match")
		req.Header.Set("Last-Event-ID", etag)
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
	alive := time.AfterFunc(cfg.Silence, cancel)
	defer alive.Stop()
	r := bufio.NewReaderSize(&touchReader{r: resp.Body, touch: func() { alive.Reset(cfg.Silence) }}, 4096)
	for {
		ev, err := readEvent(r)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				err = errors.New("the watch stream ended")
			}
			return delivered, after, err
		}
		switch ev.name {
		case "answer":
			i := strings.LastIndexByte(ev.data, '\n')
			if i < 0 {
				onError(refusal(ErrMalformedAnswer, "an answer event without its signature line"))
				continue
			}
			a, err := c.accept([]byte(ev.data[:i+1]), ev.data[i+1:], ev.id, &sent)
			if err != nil {
				onError(err)
				continue
			}
			delivered = true
			if err := handle(a); err != nil {
				return delivered, after, &handlerError{err}
			}
			if c.stateMoved(&sent) {
				return delivered, 0, nil // watch again, with the new state
			}
		case "reconnect":
			var v struct {
				AfterMS int64 `json:"after_ms"`
			}
			json.Unmarshal([]byte(ev.data), &v)
			return delivered, time.Duration(max(v.AfterMS, 0)) * time.Millisecond, nil
		case "problem":
			return delivered, after, problemError(ev.data, c.now())
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
