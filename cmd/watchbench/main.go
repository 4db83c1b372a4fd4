// Command watchbench measures the push channel: one mds node on loopback
// holding thousands of watchers, and two rollbacks through the API, one
// that changes the answer of 1% of them and one that changes everyone's.
//
// It starts `mds serve` on a fresh SQLite store, registers a team key,
// pushes two hotpatches of one app version and releases them: patch 1 to
// everyone, patch 2 to a whitelist of 1% of the devices. Every watcher
// reports the patch it runs: the whitelisted ones patch 2, the others
// patch 1, so no one is told anything at first. Client processes (this
// binary again, -watchers spread over -clients processes, each from a
// 127.0.0.x address of its own, since a process here may open at most
// 20,000 files) open the watches and read every event.
//
// Then it rolls back patch 2 (the 1% are told to go back to patch 1),
// then patch 1 (everyone is told to go back to no patch), and reports for
// each: the node's CPU for the re-evaluation, the time from the API call
// until the last affected watcher had its event, and how many events
// reached watchers whose answer did not change (the aim: none). Before
// that, the node's RSS per watcher (RSS with the watchers, less RSS
// before them, over their number).
//
//	go run ./cmd/watchbench [-watchers 19000] [-clients 4]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/internal/proc"
	"github.com/mds-dev/mds/signing"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "client" {
		if err := runClient(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "watchbench client:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.IntVar(&cfg.watchers, "watchers", 19_000, "watchers the node holds")
	flag.IntVar(&cfg.clients, "clients", 4, "client processes the watchers are spread over")
	flag.StringVar(&cfg.mds, "mds", "", "mds binary; default: built from this tree")
	flag.DurationVar(&cfg.settle, "settle", 3*time.Second, "how long to wait for stray events after the last expected one")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "watchbench:", err)
		os.Exit(1)
	}
}

type config struct {
	watchers, clients int
	mds               string
	settle            time.Duration
}

// whitelisted says which devices patch 2 goes to: 1%.
func whitelisted(i int) bool { return i%100 == 0 }

func deviceID(i int) string { return fmt.Sprintf("device-%06d", i) }

func run(cfg config) error {
	if cfg.watchers < 100 || cfg.clients < 1 || cfg.clients > 200 {
		return errors.New("give -watchers of at least 100 and -clients from 1 to 200")
	}
	work, err := os.MkdirTemp("", "watchbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if cfg.mds == "" {
		if cfg.mds, err = proc.BuildMDS(work); err != nil {
			return err
		}
	}
	node, err := startNode(cfg.mds, filepath.Join(work, "data"))
	if err != nil {
		return err
	}
	defer node.stop()
	ctx := context.Background()
	mgmt := client.New(node.url, node.token)
	app, p1, p2, err := seed(ctx, mgmt, work, cfg.watchers)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	time.Sleep(time.Second) // let the node settle before reading its memory
	before := node.rss()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var clients []*clientProc
	defer func() {
		for _, c := range clients {
			c.stop()
		}
	}()
	began := time.Now()
	for k := range cfg.clients {
		first, last := k*cfg.watchers/cfg.clients, (k+1)*cfg.watchers/cfg.clients
		c, err := startClient(self, node.addr, fmt.Sprintf("127.0.0.%d", 2+k), app.Key, p1.ID, p1.Hotpatch.PatchVersion, p2.ID, p2.Hotpatch.PatchVersion, first, last)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}
	for _, c := range clients {
		if err := c.expect("ready", 5*time.Minute); err != nil {
			return err
		}
	}
	connected := time.Since(began)
	time.Sleep(2 * time.Second)
	held, err := node.metric("mds_watchers")
	if err != nil {
		return err
	}
	after := node.rss()
	fmt.Printf("%d watchers over %d client processes, connected and sent their first answer in %s\n", int(held), cfg.clients, connected.Round(time.Millisecond))
	fmt.Printf("node RSS %.1f MB before the watchers, %.1f MB with them: %.1f KB per watcher\n",
		float64(before)/1e6, float64(after)/1e6, float64(after-before)/held/1e3)
	if int(held) != cfg.watchers {
		return fmt.Errorf("the node holds %v watchers, want %d", held, cfg.watchers)
	}

	for _, step := range []struct {
		name  string
		task  int64
		every bool // everyone's answer changes, not only the whitelisted 1%
	}{{"rollback of patch 2 (1% affected)", p2.task, false}, {"rollback of patch 1 (everyone affected)", p1.task, true}} {
		for _, c := range clients {
			c.send(fmt.Sprintf("phase %t", step.every))
		}
		for _, c := range clients {
			if err := c.expect("armed", time.Minute); err != nil {
				return err
			}
		}
		cpu0, _ := node.cpu()
		passes0, _ := node.metric("mds_watch_pass_seconds_sum")
		called := time.Now()
		if _, err := mgmt.Act(ctx, "bench", step.task, mds.ActionRollback); err != nil {
			return err
		}
		var last time.Time
		affected, stray, missing := 0, 0, 0
		for _, c := range clients {
			c.send("report " + strconv.FormatInt(cfg.settle.Nanoseconds(), 10))
		}
		for _, c := range clients {
			r, err := c.report(time.Minute + cfg.settle)
			if err != nil {
				return err
			}
			affected += r.Affected
			stray += r.Stray
			missing += r.Missing
			if t := time.Unix(0, r.Last); t.After(last) {
				last = t
			}
		}
		cpu1, _ := node.cpu()
		passes1, _ := node.metric("mds_watch_pass_seconds_sum")
		fmt.Printf("%s: %d watchers sent their event, the last %s after the API call; %d events to watchers whose answer did not change; %d affected watchers missed theirs; node CPU %s; evaluation passes took %s\n",
			step.name, affected, last.Sub(called).Round(time.Millisecond), stray, missing,
			(cpu1 - cpu0).Round(time.Millisecond), time.Duration((passes1-passes0)*float64(time.Second)).Round(time.Millisecond))
	}
	return nil
}

// pushed is a released hotpatch: its package and its task.
type pushed struct {
	*api.Package
	task int64
}

// seed creates the app, its team key, and patches 1 (to everyone) and 2
// (to the whitelisted 1%) of app version 2.0.
func seed(ctx context.Context, mgmt *client.Client, work string, watchers int) (*mds.App, pushed, pushed, error) {
	app, err := mgmt.CreateApp(ctx, api.CreateApp{Slug: "bench", Platforms: []mds.Platform{mds.Android}})
	if err != nil {
		return nil, pushed{}, pushed{}, err
	}
	team, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		return nil, pushed{}, pushed{}, err
	}
	if _, err := mgmt.AddTeamKey(ctx, "bench", api.AddTeamKey{PublicKey: string(team.Public().MarshalPEM())}); err != nil {
		return nil, pushed{}, pushed{}, err
	}
	var ids []string
	for i := range watchers {
		if whitelisted(i) {
			ids = append(ids, deviceID(i))
		}
	}
	wl, err := mgmt.CreateWhitelist(ctx, "bench", api.CreateWhitelist{Name: "one percent", Kind: mds.WhitelistDevices})
	if err != nil {
		return nil, pushed{}, pushed{}, err
	}
	if _, err := mgmt.ReplaceWhitelist(ctx, "bench", wl.ID, strings.NewReader(strings.Join(ids, "\n")), false); err != nil {
		return nil, pushed{}, pushed{}, err
	}
	var out [2]pushed
	for n := range out {
		src := filepath.Join(work, fmt.Sprint("patch-", n+1))
		if err := os.MkdirAll(src, 0o750); err != nil {
			return nil, pushed{}, pushed{}, err
		}
		if err := os.WriteFile(filepath.Join(src, "fix.js"), []byte(fmt.Sprint("fix ", n+1)), 0o640); err != nil {
			return nil, pushed{}, pushed{}, err
		}
		var b bytes.Buffer
		m := hotpatch.Manifest{AppKey: app.Key, Platform: mds.Android, Targets: []hotpatch.Target{{AppVersion: "2.0"}}, PatchVersion: int64(n + 1)}
		if _, err := hotpatch.Pack(&b, m, src, team, time.Now()); err != nil {
			return nil, pushed{}, pushed{}, err
		}
		p, err := mgmt.PushHotpatch(ctx, "bench", bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			return nil, pushed{}, pushed{}, err
		}
		var tg mds.Targeting
		if n == 1 {
			tg = mds.Targeting{Whitelists: []int64{wl.ID}}
		}
		task, err := mgmt.CreateTask(ctx, "bench", api.CreateTask{PackageID: p.ID, Targeting: tg, Release: true})
		if err != nil {
			return nil, pushed{}, pushed{}, err
		}
		out[n] = pushed{Package: p, task: task.ID}
	}
	return app, out[0], out[1], nil
}

// node is the mds server under test.
type node struct {
	cmd        *exec.Cmd
	url, addr  string
	token      string
	httpClient *http.Client
}

func startNode(bin, data string) (*node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	token := "watchbench-admin-token-0123456789abcdef"
	cmd := exec.Command(bin, "serve", "--data", data, "--addr", addr, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "MDS_ADMIN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{cmd: cmd, url: "http://" + addr, addr: addr, token: token, httpClient: &http.Client{Timeout: 10 * time.Second}}
	for started := time.Now(); time.Since(started) < time.Minute; time.Sleep(50 * time.Millisecond) {
		if resp, err := n.httpClient.Get(n.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
	}
	n.stop()
	return nil, errors.New("mds did not become ready within a minute")
}

func (n *node) stop() {
	n.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
}

// rss is the node's resident memory in bytes.
func (n *node) rss() int64 { return proc.RSS(n.cmd.Process.Pid) }

// cpu is the node's user and system CPU time so far.
func (n *node) cpu() (time.Duration, error) { return proc.CPU(n.cmd.Process.Pid) }

// metric reads one sample of the node's /metrics.
func (n *node) metric(name string) (float64, error) {
	req, _ := http.NewRequest("GET", n.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := n.httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// clientProc is a client process, driven by lines on its standard input
// and answering on its standard output.
type clientProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startClient(self, addr, source, appKey string, p1, v1, p2, v2 int64, first, last int) (*clientProc, error) {
	cmd := exec.Command(self, "client", addr, source, appKey, fmt.Sprint(p1), fmt.Sprint(v1), fmt.Sprint(p2), fmt.Sprint(v2), fmt.Sprint(first), fmt.Sprint(last))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &clientProc{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c, nil
}

func (c *clientProc) send(line string) { fmt.Fprintln(c.in, line) }

func (c *clientProc) expect(want string, within time.Duration) error {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return errors.New("a client process ended")
		}
		if line != want {
			return fmt.Errorf("a client process said %q, want %q", line, want)
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("a client process did not say %q within %s", want, within)
	}
}

// report is what a client saw after a rollback.
type report struct {
	Affected, Stray, Missing int
	Last                     int64 // unix nanoseconds of the last affected watcher's event
}

func (c *clientProc) report(within time.Duration) (report, error) {
	var r report
	select {
	case line, ok := <-c.lines:
		if !ok {
			return r, errors.New("a client process ended")
		}
		return r, json.Unmarshal([]byte(line), &r)
	case <-time.After(within):
		return r, errors.New("a client process did not report")
	}
}

func (c *clientProc) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// runClient opens watchers first to last-1 from source and reads their
// events; it says "ready" once each has its first answer. "phase EVERY"
// arms a measurement (EVERY: whether every watcher's answer is to
// change, or only the whitelisted ones'); "report SETTLE" waits until
// every affected watcher had an event, or a minute, then SETTLE more for
// strays, and prints the report.
func runClient(args []string) error {
	if len(args) != 9 {
		return errors.New("usage: client ADDR SOURCE APPKEY P1 V1 P2 V2 FIRST LAST")
	}
	addr, source, appKey := args[0], args[1], args[2]
	var n [6]int64
	for i, a := range args[3:] {
		v, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return err
		}
		n[i] = v
	}
	p1, v1, p2, v2, first, last := n[0], n[1], n[2], n[3], int(n[4]), int(n[5])
	ws := make([]*watcherConn, 0, last-first)
	var ready sync.WaitGroup
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 30 * time.Second}
	for i := first; i < last; i++ {
		patch, version := p1, v1
		if whitelisted(i) {
			patch, version = p2, v2
		}
		body, _ := json.Marshal(map[string]any{"app_key": appKey, "platform": "android", "app_version": "2.0", "device_id": deviceID(i),
			"hotpatch": map[string]int64{"patch_id": patch, "patch_version": version}})
		conn, err := dialer.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("watcher %d: %w", i, err)
		}
		w := &watcherConn{conn: conn, whitelisted: whitelisted(i)}
		fmt.Fprintf(conn, "POST /client/v1/watch HTTP/1.1\r\nHost: mds\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		ready.Add(1)
		go w.read(&ready)
		ws = append(ws, w)
	}
	ready.Wait()
	fmt.Println("ready")
	var every bool
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "phase":
			every = arg == "true"
			for _, w := range ws {
				w.events.Store(0)
				w.at.Store(0)
			}
			fmt.Println("armed")
		case "report":
			settle, _ := strconv.ParseInt(arg, 10, 64)
			affected := func(w *watcherConn) bool { return every || w.whitelisted }
			deadline := time.Now().Add(time.Minute)
			for {
				done := true
				for _, w := range ws {
					if affected(w) && w.events.Load() == 0 {
						done = false
						break
					}
				}
				if done || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(time.Duration(settle))
			var r report
			for _, w := range ws {
				switch got := w.events.Load(); {
				case affected(w) && got > 0:
					r.Affected++
					r.Last = max(r.Last, w.at.Load())
					r.Stray += int(got - 1)
				case affected(w):
					r.Missing++
				default:
					r.Stray += int(got)
				}
			}
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
		}
	}
	for _, w := range ws {
		w.conn.Close()
	}
	return nil
}

// watcherConn is one watch, read to its end.
type watcherConn struct {
	conn        net.Conn
	whitelisted bool
	events      atomic.Int64 // answer events since the phase was armed
	at          atomic.Int64 // unix nanoseconds of the first of them
}

func (w *watcherConn) read(ready *sync.WaitGroup) {
	r := bufio.NewReaderSize(w.conn, 2048)
	first := true
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "watcher:", err)
		if first {
			ready.Done()
		}
	}
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		fail(fmt.Errorf("watch answered %q: %v", status, err))
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if first {
				fail(err)
			}
			return
		}
		if !strings.HasPrefix(line, "event: answer") {
			continue
		}
		if first {
			first = false
			ready.Done()
			continue
		}
		if w.events.Add(1) == 1 {
			w.at.Store(time.Now().UnixNano())
		}
	}
}
