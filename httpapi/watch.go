package httpapi

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/watch"
)

// Watching: a device that keeps a connection open is sent its answer each
// time it changes, the same signed bytes a check would return, so it acts
// at once and sends no check. Two forms share the hub (package watch):
//
//   - POST /client/v1/watch streams Server-Sent Events. The connection is
//     taken from net/http once the stream starts (hijacked), so a watcher
//     costs its socket, its device context and one small goroutine that
//     notices when the device hangs up; nothing is buffered for it but
//     the newest message.
//   - POST /client/v1/check with If-None-Match and Prefer: wait=N (long
//     poll) holds the request until the answer changes, then answers as
//     a check would, or 304 after N seconds (at most maxWait).
//
// A watcher is evaluated when a snapshot changes its app, every sweep,
// and when it connects, and sent the answer only if what it says changed
// (answer.content): a write that leaves a device's answer as it was, even
// one that raises the app's version, sends it nothing. Answers signed
// anew for a later period are sent once per period, each watcher at a
// moment of its own in the period's first half, so the re-signing does
// not wake every device at once; the answer it holds stays valid past
// that half.

// watchMsg is what a watcher is sent: its new answer, or a problem that
// ends the watch (its app was deleted or dropped its platform).
type watchMsg struct {
	answer  *answer
	problem *problem
}

// watcher is a device waiting on this node.
type watcher = watch.Watcher[watchMsg]

// watchState is what a watcher is evaluated by: its device context and
// the answer it holds.
type watchState struct {
	dev   mds.Device
	ip    netip.Addr
	since time.Time // when it connected, on the server's clock
	// clock is the device's clock when it connected (device_time), moved
	// on with the server's, so that reminders fall due as they would for
	// a device checking now; zero when the device sent none.
	clock time.Time
	held  *answer       // the answer the device holds; nil for none known
	phase time.Duration // when in a signing period its re-signed answer is due
	ended bool          // a problem ended the watch
}

// evaluation is what evaluating a watcher needs besides its state: what
// it decides into, and the buffer its answer's key points into.
type evaluation struct {
	dec delivery.Decision
	key []byte
}

var evaluations = sync.Pool{New: func() any { return new(evaluation) }}

func (e *evaluation) release() {
	e.dec.Reset()
	evaluations.Put(e)
}

// ownDevice is a copy of d that shares no memory with it: d's strings
// point into a check's body, unescaped in place, and its maps are lent by
// the check's pooled decoder.
func ownDevice(d *mds.Device) mds.Device {
	o := *d
	for _, f := range []*string{&o.AppKey, (*string)(&o.Platform), &o.AppVersion, &o.DeviceID, &o.UserID, &o.Model, &o.Brand,
		&o.OSVersion, &o.Network, &o.Region, &o.City, &o.Channel, &o.Language} {
		*f = strings.Clone(*f)
	}
	own := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		c := make(map[string]string, len(m))
		for k, v := range m {
			c[strings.Clone(k)] = strings.Clone(v)
		}
		return c
	}
	o.Attributes, o.Offline = own(d.Attributes), own(d.Offline)
	if d.DeviceTime != nil {
		t := *d.DeviceTime
		o.DeviceTime = &t
	}
	if d.LastReminded != nil {
		r := *d.LastReminded
		o.LastReminded = &r
	}
	if d.Hotpatch != nil {
		p := *d.Hotpatch
		o.Hotpatch = &p
	}
	return o
}

// newWatchState is a watcher's state from the device context of st and
// the answer the device holds. A stream outlives its request, whose st
// goes back to its pool, so it copies the context (own); a long poll's
// request waits for it, so it shares st's.
func (s *Server) newWatchState(st *checkState, held *answer, now time.Time, own bool) *watchState {
	ws := &watchState{dev: st.dev, ip: st.ip, since: now, held: held,
		phase: time.Duration(rand.Int64N(s.answers.signer.period*int64(time.Second)/2 + 1))}
	if own {
		ws.dev = ownDevice(&st.dev)
	}
	if ws.dev.DeviceTime != nil {
		ws.clock = *ws.dev.DeviceTime
	}
	return ws
}

// evaluateWatcher is the hub's Evaluate: what w should be sent now.
func (s *Server) evaluateWatcher(w *watcher, now time.Time) *watchMsg {
	ws := w.State.(*watchState)
	if ws.ended {
		return nil
	}
	snap := s.live.Current()
	if !ws.clock.IsZero() {
		t := ws.clock.Add(now.Sub(ws.since))
		ws.dev.DeviceTime = &t
	}
	in := gray.NewInput(&ws.dev, ws.ip, now)
	es := evaluations.Get().(*evaluation)
	defer es.release()
	dec := &es.dec
	if err := snap.Evaluate(&in, s.admit, dec); err != nil {
		ws.ended = true
		return &watchMsg{problem: s.errorFor("watch", evaluationProblem(err, dec, &ws.dev))}
	}
	a := s.answers.answer(dec, &ws.dev, now, &es.key)
	if h := ws.held; h != nil && h.content == a.content && !s.resignDue(ws, a, now) {
		return nil
	}
	ws.held = a
	return &watchMsg{answer: a}
}

// resignDue reports whether the watcher should be sent a, which says what
// the answer it holds says but was signed in a later period: once that
// period is past the watcher's phase.
func (s *Server) resignDue(ws *watchState, a *answer, now time.Time) bool {
	if a.epoch <= ws.held.epoch {
		return false
	}
	start := time.Unix(a.epoch*s.answers.signer.period, 0)
	return !now.Before(start.Add(ws.phase))
}

// newWatchers builds the node's hub.
func (s *Server) newWatchers(cfg watch.Config) *watch.Hub[watchMsg] {
	cfg.Now = s.now
	cfg.OnPass = s.metrics.watchPass
	cfg.OnDrop = s.metrics.watchDropped
	return watch.New(cfg, s.evaluateWatcher)
}

// watch streams a device's answers as Server-Sent Events, from its
// current one on.
func (s *Server) watch(w http.ResponseWriter, r *http.Request) {
	if !acceptsEventStream(r.Header.Values("Accept")) {
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID,
			"watch streams Server-Sent Events: send Accept: text/event-stream, or long-poll with a check that sends If-None-Match and Prefer: wait=60"))
		return
	}
	st := checkStates.Get().(*checkState)
	defer st.release()
	dec, a, ok := s.evaluateCheck(w, r, st)
	if !ok {
		return
	}
	if len(st.body) > maxWatchBody {
		s.writeProblem(w, r, mds.Errorf(mds.ETOOLARGE, "a watch body is at most %d bytes, as a watcher keeps its device context while it watches; send it without padding", maxWatchBody))
		return
	}
	if err := s.watchers.Room(); err != nil {
		s.refuseWatcher(w, r, err)
		return
	}
	var held *answer
	if r.Header.Get("Last-Event-ID") == a.etag() {
		held = a
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2, or a wrapper that cannot hand the connection over.
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "this connection cannot stream: watch over HTTP/1.1, or long-poll with Prefer: wait=60"))
		return
	}
	conn.SetDeadline(time.Time{})
	boundSendBuffer(conn)
	sink := &sseSink{conn: conn, timeout: s.watchWrite}
	if _, err := conn.Write(sseStart); err != nil || buf.Reader.Buffered() > 0 {
		// A device that sent more after its watch request has nothing to
		// send on a stream: it is not speaking the protocol.
		conn.Close()
		return
	}
	wt := &watcher{App: dec.App.ID, Sink: sink, State: s.newWatchState(st, held, s.now(), true)}
	if err := s.watchers.Add(wt); err != nil {
		sink.end(problemEvent(s.errorFor("watch", watchRefusal(err))))
		return
	}
	go s.awaitHangUp(wt, conn)
}

// maxWatchBody bounds the device context a watcher keeps: a real one is
// well under 2 KiB, and the node holds one per watcher.
const maxWatchBody = 8 << 10

// sseStart opens an event stream. It has no length, so the stream ends
// when the connection does; the retry field is how long an EventSource
// waits before reconnecting.
var sseStart = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 5000\n\n")

// watchSendBuffer bounds the kernel's send buffer of a watcher's
// connection: a few dozen events. A device that stops reading then costs
// this much kernel memory, not the megabytes the kernel would otherwise
// grow the buffer to, and its writes block (and it is dropped) soon.
const watchSendBuffer = 32 << 10

func boundSendBuffer(conn net.Conn) {
	for {
		switch c := conn.(type) {
		case interface{ SetWriteBuffer(int) error }:
			c.SetWriteBuffer(watchSendBuffer)
			return
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return
		}
	}
}

// awaitHangUp reads the watcher's connection until the device closes it,
// then forgets the watcher. Devices send nothing on a stream: one that
// does is not speaking the protocol, and is hung up on.
func (s *Server) awaitHangUp(w *watcher, conn net.Conn) {
	var b [1]byte
	conn.Read(b[:])
	s.watchers.Remove(w)
	conn.Close()
}

// Room errors of the hub, as problems.
func watchRefusal(err error) error {
	switch {
	case errors.Is(err, watch.ErrFull):
		return mds.Errorf(mds.EUNAVAILABLE, "this node holds all the watchers it can; check instead, and watch again later (another node may have room)")
	case errors.Is(err, watch.ErrDraining):
		return mds.Errorf(mds.EUNAVAILABLE, "this node is shutting down; watch again, another node will take it")
	}
	return err
}

// refuseWatcher answers a watch or long poll the hub has no room for. Its
// Retry-After is spread over a few seconds, so that refused devices do
// not all come back at once.
func (s *Server) refuseWatcher(w http.ResponseWriter, r *http.Request, err error) {
	unanswered(w.Header()).Set("Retry-After", strconv.Itoa(1+rand.IntN(5)))
	s.writeProblem(w, r, watchRefusal(err))
}

// unanswered drops the headers a long poll set for the answer it held,
// for a response that is a problem instead, and returns h.
func unanswered(h http.Header) http.Header {
	delete(h, "Etag")
	delete(h, "Cache-Control")
	return h
}

// acceptsEventStream reports whether Accept admits text/event-stream; no
// Accept admits anything.
func acceptsEventStream(accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, h := range accept {
		for part := range strings.SplitSeq(h, ",") {
			mt, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "text/event-stream", "text/*", "*/*":
				return true
			}
		}
	}
	return false
}

// sseSink writes a watcher's events to its hijacked connection.
type sseSink struct {
	conn    net.Conn
	timeout time.Duration
	once    sync.Once
}

var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Send writes an answer event: the answer's ETag as its id, and as data
// the answer's body then its signature, so the data's lines are exactly
// the body (up to and including its last newline) and the Mds-Signature
// value. A problem ends the stream.
func (k *sseSink) Send(m *watchMsg) error {
	if m.problem != nil {
		k.end(problemEvent(m.problem))
		return nil
	}
	bp := eventBufs.Get().(*[]byte)
	defer eventBufs.Put(bp)
	b := append((*bp)[:0], "id: "...)
	b = append(b, m.answer.etag()...)
	b = append(b, "\nevent: answer\ndata: "...)
	b = m.answer.appendBody(b)
	b = append(b, "data: "...)
	b = append(b, m.answer.signatureHeader()[0]...)
	b = append(b, "\n\n"...)
	*bp = b
	return k.write(b)
}

func (k *sseSink) write(b []byte) error {
	k.conn.SetWriteDeadline(time.Now().Add(k.timeout))
	_, err := k.conn.Write(b)
	return err
}

var heartbeat = []byte(":\n\n")

func (k *sseSink) Heartbeat() error { return k.write(heartbeat) }

// Reconnect tells the device to come back after the delay: in the
// stream's retry field, SSE's own, and in a reconnect event.
func (k *sseSink) Reconnect(after time.Duration) {
	ms := strconv.FormatInt(after.Milliseconds(), 10)
	k.end([]byte("retry: " + ms + "\nevent: reconnect\ndata: {\"after_ms\":" + ms + "}\n\n"))
}

func (k *sseSink) Close() { k.once.Do(func() { k.conn.Close() }) }

// end writes a last event and closes the connection.
func (k *sseSink) end(last []byte) {
	k.write(last)
	k.Close()
}

// problemEvent is a problem document as an event.
func problemEvent(p *problem) []byte {
	b, _ := json.Marshal(p)
	return []byte("event: problem\ndata: " + string(b) + "\n\n")
}

// maxWait bounds a long poll: proxies and mobile networks drop idle
// requests after a minute or two.
const maxWait = 60 * time.Second

// preferWait reads the wait preference of RFC 7240 (Prefer: wait=N), in
// seconds, capped at maxWait.
func preferWait(h string) (time.Duration, bool) {
	for pref := range strings.SplitSeq(h, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
		if !strings.EqualFold(strings.TrimSpace(name), "wait") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(value), `"`))
		if err != nil || n <= 0 {
			return 0, false
		}
		return min(time.Duration(n)*time.Second, maxWait), true
	}
	return 0, false
}

// pollSink hands a long poll's message to the request waiting for it.
type pollSink struct {
	msgs  chan *watchMsg
	drain chan time.Duration
}

func (k *pollSink) Send(m *watchMsg) error {
	select {
	case <-k.msgs: // a newer message replaces one not yet taken
	default:
	}
	k.msgs <- m
	return nil
}

func (k *pollSink) Heartbeat() error { return nil }

func (k *pollSink) Reconnect(after time.Duration) {
	select {
	case k.drain <- after:
	default:
	}
}

func (k *pollSink) Close() {}

// longPoll holds a check whose answer the device has until it changes,
// the wait ends, or the node drains. The device state is st's, which the
// request keeps until the watcher is removed.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, st *checkState, app int64, a *answer, wait time.Duration) {
	sink := &pollSink{msgs: make(chan *watchMsg, 1), drain: make(chan time.Duration, 1)}
	wt := &watcher{App: app, Sink: sink, State: s.newWatchState(st, a, s.now(), false)}
	if err := s.watchers.Add(wt); err != nil {
		s.refuseWatcher(w, r, err)
		return
	}
	defer s.watchers.Remove(wt)
	w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m := <-sink.msgs:
		if m.problem != nil {
			unanswered(w.Header())
			writeProblemDoc(w, m.problem)
			return
		}
		w.Header()["Etag"] = m.answer.etagHeader()
		s.writeAnswer(w, st, m.answer)
	case <-timer.C:
		s.metrics.check("not_modified")
		w.WriteHeader(http.StatusNotModified)
	case after := <-sink.drain:
		unanswered(w.Header()).Set("Retry-After", strconv.Itoa(int(max(after.Round(time.Second), time.Second)/time.Second)))
		s.writeProblem(w, r, watchRefusal(watch.ErrDraining))
	case <-r.Context().Done():
	}
}

// Drain prepares the node to stop: readyz reports it not ready and new
// watchers are refused at once; after delay (the time load balancers
// take to notice) every watcher is told to reconnect, each after a delay
// drawn from [0, spread), so that they spread over the other nodes.
func (s *Server) Drain(delay, spread time.Duration) {
	s.watchers.Refuse()
	time.Sleep(delay)
	s.watchers.Drain(spread)
}

// Watchers is how many devices watch this node.
func (s *Server) Watchers() int { return s.watchers.Len() }
