package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/watch"
)

// event is one Server-Sent Event.
type event struct {
	id, name, data string
}

// stream is a watch connection, its events read as they come.
type stream struct {
	resp   *http.Response
	events chan event
	ended  chan struct{}
}

// watch opens a watch for dev; header is pairs of names and values.
func (e *testEnv) watch(dev map[string]any, header ...string) *stream {
	e.t.Helper()
	resp := e.openWatch(dev, header...)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("watch: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &stream{resp: resp, events: make(chan event, 100), ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		r := bufio.NewReader(resp.Body)
		var ev event
		var data []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if data != nil {
					ev.data = strings.Join(data, "\n")
					s.events <- ev
				}
				ev, data = event{}, nil
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	e.t.Cleanup(func() { resp.Body.Close() })
	return s
}

func (e *testEnv) openWatch(dev map[string]any, header ...string) *http.Response {
	e.t.Helper()
	b, _ := json.Marshal(dev)
	req, _ := http.NewRequest("POST", e.URL+"/client/v1/watch", bytes.NewReader(b))
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// next waits for the next event.
func (s *stream) next(t testing.TB) event {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-s.ended:
		select { // the last events come before the end
		case ev := <-s.events:
			return ev
		default:
		}
		t.Fatal("the stream ended")
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return event{}
}

// quiet fails if an event arrives within d.
func (s *stream) quiet(t testing.TB, d time.Duration, who string) {
	t.Helper()
	select {
	case ev := <-s.events:
		t.Errorf("%s was sent %s %.80s", who, ev.name, ev.data)
	case <-time.After(d):
	}
}

// answerOf verifies an answer event as a device would and decodes it:
// its data is the signed body, then the signature.
func (e *testEnv) answerOf(ev event) *answer {
	e.t.Helper()
	if ev.name != "answer" {
		e.t.Fatalf("event %q %s, want an answer", ev.name, ev.data)
	}
	i := strings.LastIndexByte(ev.data, '\n')
	if i < 0 {
		e.t.Fatalf("answer event without a signature line: %q", ev.data)
	}
	body, sig := []byte(ev.data[:i+1]), ev.data[i+1:]
	resp := &http.Response{Header: http.Header{"Mds-Signature": {sig}}}
	e.verifyAnswer(resp, body, e.AnswerKey.Public())
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		e.t.Fatal(err)
	}
	return &a
}

// metric reads a counter or gauge of the management API's /metrics.
func (e *testEnv) metric(name string) float64 {
	e.t.Helper()
	_, b := e.request("GET", "/metrics", e.admin, nil)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				e.t.Fatal(err)
			}
			return f
		}
	}
	e.t.Fatalf("/metrics has no %s", name)
	return 0
}

// upgradeFor releases version 2.0 of app to a whitelist of device IDs,
// and returns the task.
func (e *testEnv) upgradeFor(app *mds.App, ids ...string) *fullTask {
	e.t.Helper()
	wl := e.createWhitelist(app.Slug, "testers", "device", "device_id\n"+strings.Join(ids, "\n")+"\n")
	pkg := e.createPackage(app.Slug, e.admin, map[string]any{"platform": "android", "version": "2.0", "build": 200,
		"url": "https://example.com/shop-2.0.apk"})
	return e.grayTask(app.Slug, pkg.ID, map[string]any{"whitelists": []int64{wl.ID}})
}

func withWatch(cfg watch.Config) envOption { return func(c *httpapi.Config) { c.Watch = cfg } }

// TestWatchSendsChangedAnswersOnly: a watcher is sent its answer when it
// connects, then only when what it says changes; the events carry the
// bytes a check returns, signed; a write that changes no device's answer
// sends nothing, though it raises the app's version.
func TestWatchSendsChangedAnswersOnly(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Sweep: time.Hour}))
	app := e.createApp("shop", mds.Android)
	task := e.upgradeFor(app, "d-1")
	devs := map[string]map[string]any{}
	streams := map[string]*stream{}
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		d := device(app, mds.Android, "1.0")
		d["device_id"] = id
		devs[id] = d
		streams[id] = e.watch(d)
		ev := streams[id].next(t)
		a := e.answerOf(ev)
		resp, checked := e.check(d)
		if ev.id != resp.Header.Get("ETag") {
			t.Errorf("%s: event id %s, check ETag %s", id, ev.id, resp.Header.Get("ETag"))
		}
		if (a.Upgrade != nil) != (id == "d-1") || (checked.Upgrade != nil) != (a.Upgrade != nil) {
			t.Errorf("%s: watch says upgrade %v, check says %v", id, a.Upgrade, checked.Upgrade)
		}
	}
	// A watcher of another app, which no write below concerns.
	news := e.createApp("news", mds.Android)
	other := e.watch(device(news, mds.Android, "1.0"))
	other.next(t)
	// The counter moves once the write returns, which may be after the
	// device read the event.
	for deadline := time.Now().Add(5 * time.Second); e.metric("mds_watch_events_total") != 4; {
		if time.Now().After(deadline) {
			t.Fatalf("%v events for the 4 first answers", e.metric("mds_watch_events_total"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent := e.metric("mds_watch_events_total")
	e.act("shop", task.ID, mds.ActionPause)
	a := e.answerOf(streams["d-1"].next(t))
	if a.Upgrade != nil {
		t.Errorf("after the pause d-1 was sent %+v", a.Upgrade)
	}
	streams["d-2"].quiet(t, 200*time.Millisecond, "d-2, whose answer did not change,")
	streams["d-3"].quiet(t, 0, "d-3, whose answer did not change,")
	if got := e.metric("mds_watch_events_total") - sent; got != 1 {
		t.Errorf("%v events for a pause that changed one answer", got)
	}

	// A whitelist edit that admits no watcher: every answer stays as it
	// was, though the app's version moved.
	evaluated := e.metric("mds_watch_evaluations_total")
	resp, b := e.request("PUT", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d/entries", task.Targeting.Whitelists[0]), e.admin,
		strings.NewReader("device_id\nd-1\nd-9\n"))
	if resp.StatusCode != 200 {
		t.Fatalf("whitelist edit: %d %s", resp.StatusCode, b)
	}
	for _, id := range []string{"d-1", "d-2", "d-3"} {
		streams[id].quiet(t, 100*time.Millisecond, id+", after a whitelist edit that does not concern it,")
	}
	if n := e.metric("mds_watch_evaluations_total") - evaluated; n != 3 {
		t.Errorf("%v evaluations after a write to an app of 3 watchers (and another app of 1)", n)
	}
	e.act("shop", task.ID, mds.ActionResume)
	if a := e.answerOf(streams["d-1"].next(t)); a.Upgrade == nil || a.Upgrade.Version != "2.0" {
		t.Errorf("after the resume d-1 was sent %+v", a.Upgrade)
	}
	for _, id := range []string{"d-2", "d-3"} {
		streams[id].quiet(t, 100*time.Millisecond, id)
	}
	other.quiet(t, 0, "the watcher of another app")
	if n := e.metric("mds_watchers"); n != 4 {
		t.Errorf("mds_watchers %v, want 4", n)
	}
}

// TestWatchResumes: a watcher that names the answer it holds
// (Last-Event-ID) is sent nothing until it changes; one that names an
// older one is sent the current one at once.
func TestWatchResumes(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Sweep: time.Hour}))
	app := e.createApp("shop", mds.Android)
	d := device(app, mds.Android, "1.0")
	old, _ := e.check(d)
	task := e.upgradeFor(app, "device-1")
	cur, _ := e.check(d)
	held := e.watch(d, "Last-Event-ID", cur.Header.Get("ETag"))
	held.quiet(t, 200*time.Millisecond, "a watcher holding the current answer")
	behind := e.watch(d, "Last-Event-ID", old.Header.Get("ETag"))
	if ev := behind.next(t); ev.id != cur.Header.Get("ETag") {
		t.Errorf("a watcher holding an older answer was sent %s, want %s", ev.id, cur.Header.Get("ETag"))
	}
	e.act("shop", task.ID, mds.ActionPause)
	if a := e.answerOf(held.next(t)); a.Upgrade != nil {
		t.Errorf("after the pause: %+v", a.Upgrade)
	}
}

// TestWatchTimeMoves: what changes with time alone (a ramp step) reaches
// watchers at the next sweep; answers signed anew in a later period are
// sent once, in the first half of the period.
func TestWatchTimeMoves(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Sweep: 20 * time.Millisecond}))
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://example.com/2.apk"})
	step := e.Now().Add(time.Hour)
	e.grayTask("shop", pkg.ID, map[string]any{"rollout": map[string]any{"ramp": []map[string]any{
		{"at": step.Format(time.RFC3339), "percent": 100}}}})
	s := e.watch(device(app, mds.Android, "1.0"))
	first := e.answerOf(s.next(t))
	if first.Upgrade != nil {
		t.Fatalf("before the ramp step: %+v", first.Upgrade)
	}
	s.quiet(t, 100*time.Millisecond, "a watcher before the step")
	e.advance(time.Hour)
	if a := e.answerOf(s.next(t)); a.Upgrade == nil {
		t.Error("after the ramp step the watcher was sent no upgrade")
	}
	s.quiet(t, 100*time.Millisecond, "a watcher after the step")
	// The default answer lifetime is 24 h, signed every 12 h: by 18 h
	// into the next period, every watcher is sent its answer signed anew.
	e.advance(18 * time.Hour)
	a := e.answerOf(s.next(t))
	if a.Upgrade == nil || !a.Expires.After(first.Expires) {
		t.Errorf("re-signed answer: upgrade %v, expires %s after %s", a.Upgrade, a.Expires, first.Expires)
	}
	s.quiet(t, 100*time.Millisecond, "a watcher sent its re-signed answer")
}

// TestLongPoll: a check naming the answer it holds and preferring to
// wait is held until the answer changes, then answered as a check; or
// answered 304 when the wait ends.
func TestLongPoll(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	d := device(app, mds.Android, "1.0")
	task := e.upgradeFor(app, "device-1")
	resp, _ := e.check(d)
	etag := resp.Header.Get("ETag")
	began := time.Now()
	resp, _ = e.request("POST", "/client/v1/check", "", d, "If-None-Match", etag, "Prefer", "wait=1")
	if waited := time.Since(began); resp.StatusCode != 304 || waited < time.Second || waited > 3*time.Second {
		t.Errorf("long poll with no change: %d after %s, want 304 after 1 s", resp.StatusCode, waited)
	}
	if resp.Header.Get("Preference-Applied") != "wait=1" {
		t.Errorf("Preference-Applied %q", resp.Header.Get("Preference-Applied"))
	}
	done := make(chan *http.Response)
	var body []byte
	go func() {
		r, b := e.request("POST", "/client/v1/check", "", d, "If-None-Match", etag, "Prefer", "wait=30")
		body = b
		done <- r
	}()
	time.Sleep(100 * time.Millisecond)
	began = time.Now()
	e.act("shop", task.ID, mds.ActionPause)
	select {
	case r := <-done:
		if r.StatusCode != 200 || time.Since(began) > time.Second {
			t.Fatalf("long poll after a change: %d %s after %s", r.StatusCode, body, time.Since(began))
		}
		e.verifyAnswer(r, body, e.AnswerKey.Public())
		var a answer
		json.Unmarshal(body, &a)
		if a.Upgrade != nil || r.Header.Get("ETag") == etag {
			t.Errorf("long poll answered %s with ETag %s", body, r.Header.Get("ETag"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll was not answered after the change")
	}
	// A long poll's watcher goes once its answer is written.
	for deadline := time.Now().Add(5 * time.Second); e.metric("mds_watchers") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%v watchers after the long polls ended", e.metric("mds_watchers"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchSlowConsumerDropped: a watcher whose device stops reading is
// dropped once its connection's buffers are full, and a watcher beside it
// is sent every change meanwhile.
func TestWatchSlowConsumerDropped(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Sweep: time.Hour}), func(c *httpapi.Config) { c.WatchWriteTimeout = 100 * time.Millisecond })
	app := e.createApp("shop", mds.Android)
	task := e.upgradeFor(app, "device-1")
	d := device(app, mds.Android, "1.0")
	b, _ := json.Marshal(d)
	// A device that never reads, with a receive buffer of a few kilobytes.
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048) })
	}}
	conn, err := dialer.Dial("tcp", e.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /client/v1/watch HTTP/1.1\r\nHost: mds\r\nAccept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	good := e.watch(d)
	good.next(t)
	for deadline := time.Now().Add(5 * time.Second); e.metric("mds_watchers") != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%v watchers, want the one that does not read and the one that does", e.metric("mds_watchers"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; e.metric("mds_watch_dropped_total") == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher that does not read was not dropped after %d changes", i)
		}
		action := mds.ActionPause
		if i%2 == 1 {
			action = mds.ActionResume
		}
		e.act("shop", task.ID, action)
		good.next(t) // every change reaches the one that reads, in turn
	}
	if n := e.metric("mds_watchers"); n != 1 {
		t.Errorf("%v watchers after the slow one was dropped, want 1", n)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("the slow watcher's connection was not closed: %v", err)
	}
}

// TestWatchDrain: draining a node tells its watchers to reconnect after
// a delay within the spread, ends their streams and waiting long polls,
// refuses new ones, and makes readyz say not ready.
func TestWatchDrain(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	d := device(app, mds.Android, "1.0")
	streams := []*stream{e.watch(d), e.watch(d)}
	for _, s := range streams {
		e.answerOf(s.next(t))
	}
	resp, _ := e.check(d)
	polled := make(chan *http.Response)
	go func() {
		r, _ := e.request("POST", "/client/v1/check", "", d, "If-None-Match", resp.Header.Get("ETag"), "Prefer", "wait=30")
		polled <- r
	}()
	time.Sleep(100 * time.Millisecond)
	spread := 10 * time.Second
	e.API.Drain(0, spread)
	for i, s := range streams {
		ev := s.next(t)
		var v struct {
			AfterMS int64 `json:"after_ms"`
		}
		if ev.name != "reconnect" || json.Unmarshal([]byte(ev.data), &v) != nil || v.AfterMS < 0 || v.AfterMS >= spread.Milliseconds() {
			t.Errorf("watcher %d: %s %s, want a reconnect within %s", i, ev.name, ev.data, spread)
		}
		select {
		case <-s.ended:
		case <-time.After(5 * time.Second):
			t.Errorf("watcher %d: the stream did not end", i)
		}
	}
	select {
	case r := <-polled:
		if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" {
			t.Errorf("a long poll when draining: %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
		}
	case <-time.After(5 * time.Second):
		t.Error("the long poll was not answered when draining")
	}
	r := e.openWatch(d)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	e.wantProblem(r, b, 503, "this node is shutting down; watch again, another node will take it")
	r, b = e.request("GET", "/readyz", "", nil)
	e.wantProblem(r, b, 503, "this node is shutting down")
}

// TestWatchRefusals: a full node, a device context that does not
// evaluate, and a client that does not take event streams are refused
// with problems before any stream starts.
func TestWatchRefusals(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Max: 1}))
	app := e.createApp("shop", mds.Android)
	d := device(app, mds.Android, "1.0")
	e.watch(d).next(t)
	r := e.openWatch(d)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	e.wantProblem(r, b, 503, "this node holds all the watchers it can; check instead, and watch again later (another node may have room)")
	if r.Header.Get("Retry-After") == "" {
		t.Error("a full node gave no Retry-After")
	}
	unknown := device(app, mds.Android, "1.0")
	unknown["app_key"] = "no-such-app"
	r = e.openWatch(unknown)
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 404 {
		t.Errorf("watch of an unknown app: %d %s", r.StatusCode, b)
	}
	padded := device(app, mds.Android, "1.0")
	attrs := map[string]string{}
	for i := range 40 {
		attrs[fmt.Sprintf("a%03d%s", i, strings.Repeat("n", 100))] = strings.Repeat("v", 200)
	}
	padded["attributes"] = attrs
	r = e.openWatch(padded)
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	e.wantProblem(r, b, 413, "a watch body is at most 8192 bytes, as a watcher keeps its device context while it watches; send it without padding")
	if resp, _ := e.request("POST", "/client/v1/check", "", padded); resp.StatusCode != 200 {
		t.Errorf("the same body checked: %d, want 200", resp.StatusCode)
	}
	r = e.openWatch(d, "Accept", "application/json")
	b, _ = io.ReadAll(r.Body)
	r.Body.Close()
	e.wantProblem(r, b, 400, "watch streams Server-Sent Events: send Accept: text/event-stream, or long-poll with a check that sends If-None-Match and Prefer: wait=60")
}

// TestWatchEndsWhenAppGoes: a watcher whose app is deleted is sent a
// problem and its stream ends.
func TestWatchEndsWhenAppGoes(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	s := e.watch(device(app, mds.Android, "1.0"))
	e.answerOf(s.next(t))
	e.call("DELETE", "/api/v1/apps/shop", e.admin, nil, 204, nil)
	ev := s.next(t)
	if ev.name != "problem" || !strings.Contains(ev.data, `"status":404`) {
		t.Errorf("after the app was deleted: %s %s", ev.name, ev.data)
	}
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		t.Error("the stream did not end")
	}
}

// TestWatchEscapedKeys: a watcher keeps the device context its body
// said, escapes and all (a check's decoder unescapes in place): its
// answer echoes the offline packages by their unescaped IDs, and an
// escaped quote in a key breaks nothing.
func TestWatchEscapedKeys(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	body := `{"app_key":"` + shop.Key + `","platform":"android","app_version":"2.1.0","device_id":"d-1",` +
		`"offline":{"shop\u002dhome":"1.0.0"},"attributes":{"a\"b":"x","t\u0069er":"gold"}}`
	req, _ := http.NewRequest("POST", e.URL+"/client/v1/watch", strings.NewReader(body))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var data []string
	for len(data) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended: %v", err)
		}
		if d, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
			data = append(data, d)
		}
	}
	var a struct {
		Device struct {
			Offline string `json:"offline"`
		} `json:"device"`
	}
	if err := json.Unmarshal([]byte(data[0]), &a); err != nil {
		t.Fatal(err)
	}
	if want := string(mds.AppendHeldDigest(nil, map[string]string{"shop-home": "1.0.0"})); a.Device.Offline != want {
		t.Errorf("the watcher's answer echoes %q, want the digest of shop-home 1.0.0", a.Device.Offline)
	}
}
