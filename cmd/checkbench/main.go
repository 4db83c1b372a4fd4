// Command checkbench measures the device check of the real mds binary
// against a bare net/http JSON handler, with wrk as the load generator in
// a process of its own, on loopback.
//
// For each deployment size it seeds a SQLite store (apps × tasks official
// tasks, plus a gray app of 50 gray tasks and a million-entry whitelist),
// starts `mds serve` on it and the bare server beside it, and builds a
// few thousand different device bodies. It then checks until the node's
// preview sample stops growing (the steady state), and runs interleaved
// rounds of wrk against both servers, for full answers and for 304s, at
// each connection count. It prints, as medians over the rounds, the
// throughput ratio mds/bare, p50 and p99 latency and server CPU per check,
// and the mds node's RSS after each round. With -soak it then checks that
// many more times, printing the node's RSS as it goes. Last it times writes through the management API (writes.go): task
// edits one by one, and loading apps × tasks more.
//
//	go run ./cmd/checkbench [-apps 100,1000] [-conns 64,256] [-rounds 3] [-duration 10s] [-soak 10000000]
//
// wrk must be on PATH (scripts/bench-check installs Debian's).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/internal/proc"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		if err := serveBare(); err != nil {
			fmt.Fprintln(os.Stderr, "bare:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	flag.StringVar(&cfg.apps, "apps", "100,1000", "deployment sizes: apps of the reference load, comma-separated")
	flag.IntVar(&cfg.tasks, "tasks", 20, "live tasks per app")
	flag.StringVar(&cfg.configLoad, "config", "", "remote configuration of every app of the reference load: keys,namespaces,gray changes (e.g. 2000,10,20); none by default")
	flag.IntVar(&cfg.whitelist, "whitelist", 1_000_000, "entries of the gray app's whitelist")
	flag.StringVar(&cfg.conns, "conns", "64,256", "wrk connection counts, comma-separated")
	flag.IntVar(&cfg.threads, "threads", 1, "wrk threads")
	flag.IntVar(&cfg.rounds, "rounds", 3, "interleaved rounds per measurement")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of one wrk run, in whole seconds")
	flag.IntVar(&cfg.bodies, "bodies", 4096, "different device bodies the load cycles through")
	flag.StringVar(&cfg.mds, "mds", "", "mds binary to measure; default: built from this tree")
	flag.StringVar(&cfg.baseline, "baseline", "", "another mds binary (say, built before a change) measured in the same interleaved rounds, on a copy of the same store: "+
		"its ratio to bare, and mds's to it, are printed too; on a noisy machine the only fair comparison of two builds")
	flag.BoolVar(&cfg.checks, "checks", true, "run the check rounds (false: only the writes)")
	flag.IntVar(&cfg.edits, "edits", 200, "task edits through the API after the check rounds, timed one by one")
	flag.IntVar(&cfg.loadApps, "load-apps", 100, "apps of -tasks tasks then loaded through the API, timed as a whole")
	flag.IntVar(&cfg.instructions, "instructions", 0, "instead of the wrk rounds, count the servers' instructions per check under valgrind's callgrind over this many checks of each answer (instr.go)")
	flag.IntVar(&cfg.soak, "soak", 0, "after the rounds, this many more full checks (c64) against mds alone, with its RSS every 30 s")
	flag.Parse()
	if err := run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "checkbench:", err)
		os.Exit(1)
	}
}

type config struct {
	apps, conns, configLoad                   string
	tasks, whitelist, threads, rounds, bodies int
	duration                                  time.Duration
	mds, baseline                             string
	checks                                    bool
	edits, loadApps, soak, instructions       int
}

func run(ctx context.Context, cfg config) error {
	apps, err := ints(cfg.apps)
	if err != nil {
		return fmt.Errorf("-apps: %w", err)
	}
	if cfg.configLoad != "" {
		if c, err := ints(cfg.configLoad); err != nil || len(c) != 3 {
			return fmt.Errorf("-config %q: want keys,namespaces,changes, like 2000,10,20", cfg.configLoad)
		}
	}
	conns, err := ints(cfg.conns)
	if err != nil {
		return fmt.Errorf("-conns: %w", err)
	}
	if _, err := exec.LookPath("wrk"); err != nil && cfg.instructions == 0 {
		return errors.New("wrk is not on PATH: run scripts/bench-check, which installs it")
	}
	work, err := os.MkdirTemp("", "checkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if cfg.mds == "" {
		if cfg.mds, err = proc.BuildMDS(work); err != nil {
			return err
		}
	}
	if cfg.instructions > 0 {
		fmt.Printf("callgrind, %d checks of each answer over 4 connections, %d device bodies; server instructions per check\n\n", cfg.instructions, cfg.bodies)
		fmt.Printf("%-5s %-6s %12s %12s %6s", "apps", "answer", "bare", "mds", "ratio")
		if cfg.baseline != "" {
			fmt.Printf(" %12s %6s %8s", "base", "ratio", "mds/base")
		}
		fmt.Println()
	} else {
		fmt.Printf("wrk -t%d, %s per run, %d rounds, %d device bodies; medians over rounds\n\n", cfg.threads, cfg.duration, cfg.rounds, cfg.bodies)
		printHeader(cfg)
	}
	for _, n := range apps {
		if err := measure(ctx, cfg, work, n, conns); err != nil {
			return fmt.Errorf("%d apps: %w", n, err)
		}
	}
	return nil
}

func printHeader(cfg config) {
	fmt.Printf("%-5s %-6s %-5s %9s %9s %6s %17s %17s %10s %10s %9s", "apps", "answer", "conns", "bare r/s", "mds r/s", "ratio",
		"bare p50/p99 ms", "mds p50/p99 ms", "bare µs/ck", "mds µs/ck", "mds B/ans")
	if cfg.baseline != "" {
		fmt.Printf(" %9s %6s %8s %10s %9s", "base r/s", "ratio", "mds/base", "base µs/ck", "base B")
	}
	fmt.Println()
}

// measure runs every round for one deployment size and prints its rows.
func measure(ctx context.Context, cfg config, work string, apps int, conns []int) error {
	dir := filepath.Join(work, fmt.Sprint("apps-", apps))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	seeded := time.Now()
	if err := seed(ctx, filepath.Join(dir, "mds.db"), apps, cfg.tasks, cfg.whitelist, cfg.configLoad); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(os.Stderr, "%d apps: seeded in %s\n", apps, time.Since(seeded).Round(time.Millisecond))
	var based string
	if cfg.baseline != "" {
		// A copy of the store, so that each node bootstraps its own admin
		// token and neither sees the other's writes.
		based = dir + "-baseline"
		if err := copyStore(dir, based); err != nil {
			return err
		}
	}
	if cfg.instructions > 0 {
		return measureInstructions(cfg, dir, based, apps, cfg.instructions, deviceBodies(apps, cfg.bodies))
	}
	node, err := startMDS(cfg.mds, dir)
	if err != nil {
		return err
	}
	defer node.stop()
	if !cfg.checks {
		return measureWrites(ctx, node, apps, cfg.edits, cfg.loadApps, cfg.tasks)
	}
	bare, err := startBare()
	if err != nil {
		return err
	}
	defer bare.stop()
	// Each mds node in the rounds has scripts of its own: full answers,
	// and 304s with the ETags it gave.
	type measured struct {
		*server
		full, cached string
	}
	bodies := deviceBodies(apps, cfg.bodies)
	prepare := func(n *server, name string) (measured, error) {
		etags, upgrades, err := fetchETags(n.url, bodies)
		if err != nil {
			return measured{}, err
		}
		if upgrades < len(bodies)/5 {
			return measured{}, fmt.Errorf("only %d of %d device bodies get an upgrade from %s: the fixture is off", upgrades, len(bodies), name)
		}
		m := measured{server: n}
		if m.full, err = writeScript(filepath.Join(dir, name+"-full.lua"), bodies, nil); err != nil {
			return m, err
		}
		if m.cached, err = writeScript(filepath.Join(dir, name+"-304.lua"), bodies, etags); err != nil {
			return m, err
		}
		return m, warmUp(n, m.full, cfg.threads)
	}
	mdsNode, err := prepare(node, "mds")
	if err != nil {
		return err
	}
	servers := []measured{{server: bare, full: mdsNode.full, cached: mdsNode.cached}, mdsNode}
	if based != "" {
		base, err := startMDS(cfg.baseline, based)
		if err != nil {
			return err
		}
		defer base.stop()
		baseNode, err := prepare(base, "baseline")
		if err != nil {
			return err
		}
		servers = append(servers, baseNode)
	}

	type key struct {
		cached bool
		conns  int
	}
	results := map[key][][]wrkResult{} // per server: bare, mds, baseline
	var rss []string
	for round := range cfg.rounds {
		for _, cached := range []bool{false, true} {
			for _, c := range conns {
				k := key{cached, c}
				r := results[k]
				if r == nil {
					r = make([][]wrkResult, len(servers))
				}
				for j := range servers {
					i := (j + round) % len(servers) // interleave: none always goes first
					script := servers[i].full
					if cached {
						script = servers[i].cached
					}
					res, err := runWrk(servers[i].server, script, cfg.threads, c, cfg.duration)
					if err != nil {
						return err
					}
					r[i] = append(r[i], res)
				}
				results[k] = r
			}
		}
		rss = append(rss, fmt.Sprintf("%.0f MB", float64(node.rss())/1e6))
	}
	for _, cached := range []bool{false, true} {
		answer := "full"
		if cached {
			answer = "304"
		}
		for _, c := range conns {
			r := results[key{cached, c}]
			ratio := func(i, over int) float64 {
				var v []float64
				for k := range r[0] {
					v = append(v, r[i][k].rps/r[over][k].rps)
				}
				return median(v)
			}
			b, m := summarize(r[0]), summarize(r[1])
			fmt.Printf("%-5d %-6s %-5d %9.0f %9.0f %6.2f %8.2f/%-8.2f %8.2f/%-8.2f %10.1f %10.1f %9.0f", apps, answer, c,
				b.rps, m.rps, ratio(1, 0), b.p50, b.p99, m.p50, m.p99, b.cpu, m.cpu, m.bytes)
			if len(r) > 2 {
				base := summarize(r[2])
				fmt.Printf(" %9.0f %6.2f %8.3f %10.1f %9.0f", base.rps, ratio(2, 0), ratio(1, 2), base.cpu, base.bytes)
			}
			fmt.Println()
		}
	}
	fmt.Printf("      mds RSS after each round: %s\n", strings.Join(rss, ", "))
	if err := soak(node, mdsNode.full, cfg.threads, cfg.soak); err != nil {
		return err
	}
	return measureWrites(ctx, node, apps, cfg.edits, cfg.loadApps, cfg.tasks)
}

// copyStore copies the SQLite files of the store in dir to a new
// directory to.
func copyStore(dir, to string) error {
	if err := os.MkdirAll(to, 0o750); err != nil {
		return err
	}
	for _, name := range []string{"mds.db", "mds.db-wal"} {
		src, err := os.Open(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && name != "mds.db" {
			continue
		}
		if err != nil {
			return err
		}
		dst, err := os.Create(filepath.Join(to, name))
		if err == nil {
			_, err = io.Copy(dst, src)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// soak checks node n more times, in runs of 30 s, and prints its RSS
// before the first and after each: the node's memory over time.
func soak(node *server, script string, threads, n int) error {
	if n <= 0 {
		return nil
	}
	answered := func() (float64, error) {
		var sum float64
		for _, outcome := range []string{"upgrade", "none", "not_modified"} {
			v, err := node.metric(`mds_checks_total{outcome="` + outcome + `"}`)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	}
	start, err := answered()
	if err != nil {
		return err
	}
	began := time.Now()
	var rss []string
	for {
		done, err := answered()
		if err != nil {
			return err
		}
		rss = append(rss, fmt.Sprintf("%.1fM %.0f MB", (done-start)/1e6, float64(node.rss())/1e6))
		if done-start >= float64(n) {
			break
		}
		if time.Since(began) > time.Hour {
			return fmt.Errorf("soak: %.0f of %d checks in an hour; RSS so far: %s", done-start, n, strings.Join(rss, ", "))
		}
		if _, err := runWrk(node, script, threads, 64, 30*time.Second); err != nil {
			return err
		}
	}
	fmt.Printf("      mds RSS over the soak (checks so far, RSS): %s\n", strings.Join(rss, ", "))
	return nil
}

// deviceBodies builds n different check bodies: three in four of the
// reference apps' devices, one in four of the gray app's (whitelisted,
// current, or passing every rule but no gate).
func deviceBodies(apps, n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := range n {
		var d *mds.Device
		switch g := i / 4; {
		case i%4 != 3:
			d = deliverytest.RefDevice(i, apps)
		case g%3 == 0:
			d = deliverytest.GrayDevice(g*97, "2.0")
		case g%3 == 1:
			d = deliverytest.GrayDevice(2_000_000+g, "3.49.0")
			d.Build = 349
		default:
			d = deliverytest.GrayDevice(2_000_000+g, "2.0")
		}
		b, _ := json.Marshal(d)
		out = append(out, b)
	}
	return out
}

// fetchETags checks each body once and returns its ETag, and how many
// bodies are offered an upgrade.
func fetchETags(url string, bodies [][]byte) ([]string, int, error) {
	etags := make([]string, len(bodies))
	upgrades := 0
	for i, b := range bodies {
		resp, err := http.Post(url+"/client/v1/check", "application/json", strings.NewReader(string(b)))
		if err != nil {
			return nil, 0, err
		}
		var a struct{ Upgrade *json.RawMessage }
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("check of body %d: status %d, %v", i, resp.StatusCode, err)
		}
		if a.Upgrade != nil {
			upgrades++
		}
		etags[i] = resp.Header.Get("ETag")
	}
	return etags, upgrades, nil
}

// writeScript writes a wrk script that cycles through bodies, each sent
// with its ETag when etags are given.
func writeScript(path string, bodies [][]byte, etags []string) (string, error) {
	var b strings.Builder
	b.WriteString("local bodies = {\n")
	for _, body := range bodies {
		fmt.Fprintf(&b, "%s,\n", luaString(string(body)))
	}
	b.WriteString("}\nlocal etags = {\n")
	for _, e := range etags {
		fmt.Fprintf(&b, "%s,\n", luaString(e))
	}
	b.WriteString(`}
local i = 0
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
  i = math.random(#bodies) - 1
end
function request()
  i = i % #bodies + 1
  local headers = { ["Content-Type"] = "application/json" }
  if #etags > 0 then headers["If-None-Match"] = etags[i] end
  return wrk.format("POST", "/client/v1/check", headers, bodies[i])
end
`)
	return path, os.WriteFile(path, []byte(b.String()), 0o640)
}

// luaString quotes s for Lua: bodies are JSON, so only quotes and
// backslashes need escaping, and non-ASCII bytes pass through.
func luaString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// warmUp checks until the node's preview sample stops growing: the steady
// state, where a check is recorded one in every few and in place.
func warmUp(node *server, script string, threads int) error {
	last := -1.0
	for range 40 {
		if _, err := runWrk(node, script, threads, 64, 5*time.Second); err != nil {
			return err
		}
		n, err := node.metric("mds_preview_sample_bytes")
		if err != nil {
			// An older binary, without the gauge: give it a fixed warm-up.
			fmt.Fprintf(os.Stderr, "no sample gauge (%v): warming up for 60 s\n", err)
			_, err := runWrk(node, script, threads, 64, 55*time.Second)
			return err
		}
		if last > 0 && n < last*1.01 {
			fmt.Fprintf(os.Stderr, "steady state: preview sample %.1f MB\n", n/1e6)
			return nil
		}
		last = n
	}
	return errors.New("the preview sample did not stop growing within 200 s of checks")
}

// server is a process the benchmark started.
type server struct {
	name  string
	url   string
	token string // the admin token, for the management API
	cmd   *exec.Cmd
}

func startMDS(bin, dir string) (*server, error) { return startMDSWrapped(nil, bin, dir) }

// command runs argv, after wrap (a program that runs it, as valgrind
// does) when given.
func command(wrap []string, argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	if len(wrap) > 0 {
		cmd = exec.Command(wrap[0], append(wrap[1:], argv...)...)
		// Valgrind 3.19 knows neither the runtime's preemption signals
		// nor RDTSCP, which the runtime's lock spinning reads the clock
		// with on CPUs that have it: either kills a server under load.
		cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1,cpu.rdtscp=off")
	}
	return cmd
}

// startMDSWrapped is startMDS run after wrap.
func startMDSWrapped(wrap []string, bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 24)
	rand.Read(secret)
	token := hex.EncodeToString(secret)
	cmd := command(wrap, bin, "serve", "--data", dir, "--addr", port, "--log-level", "warn")
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "MDS_ADMIN_TOKEN="+token)
	if len(wrap) > 0 {
		cmd.Stderr = io.Discard // valgrind's banner
	} else {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "mds", url: "http://" + port, token: token, cmd: cmd}
	started := time.Now()
	for time.Since(started) < 5*time.Minute {
		if resp, err := http.Get(s.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Fprintf(os.Stderr, "mds ready in %s, RSS %.0f MB\n", time.Since(started).Round(time.Millisecond), float64(s.rss())/1e6)
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("mds did not become ready within 5 minutes")
}

func startBare() (*server, error) { return startBareWrapped(nil) }

// startBareWrapped is startBare run after wrap.
func startBareWrapped(wrap []string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := command(wrap, self, "bare")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if len(wrap) > 0 {
		cmd.Stderr = io.Discard // valgrind's banner
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("bare server: %w", err)
	}
	return &server{name: "bare", url: "http://" + strings.TrimSpace(addr), cmd: cmd}, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpu is the process's user and system CPU time so far.
func (s *server) cpu() (time.Duration, error) { return proc.CPU(s.cmd.Process.Pid) }

// rss is the process's resident memory in bytes.
func (s *server) rss() int64 { return proc.RSS(s.cmd.Process.Pid) }

// metric reads one gauge from the node's /metrics.
func (s *server) metric(name string) (float64, error) {
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

type wrkResult struct {
	rps, p50, p99, cpu float64 // requests/s, ms, ms, µs of server CPU per request
	bytes              float64 // response bytes per request, headers included, as wrk read them
}

// runWrk loads s for d and reads wrk's report.
func runWrk(s *server, script string, threads, conns int, d time.Duration) (wrkResult, error) {
	before, err := s.cpu()
	if err != nil {
		return wrkResult{}, err
	}
	out, err := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(int(d.Seconds()), 1)), // wrk reads one number and one unit
		"--latency", "--timeout", "10s", "-s", script, s.url+"/client/v1/check").CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk against %s: %v\n%s", s.name, err, out)
	}
	after, err := s.cpu()
	if err != nil {
		return wrkResult{}, err
	}
	r, requests, err := parseWrk(string(out))
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk against %s: %w", s.name, err)
	}
	r.cpu = float64((after - before).Microseconds()) / requests
	return r, nil
}

// parseWrk reads wrk's report (run with --latency): the result but for
// CPU, and how many requests were made.
func parseWrk(out string) (r wrkResult, requests float64, err error) {
	var read float64
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "50%":
			r.p50 = millis(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.p99 = millis(f[1])
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 6 && f[1] == "requests" && f[2] == "in" && f[5] == "read":
			requests, _ = strconv.ParseFloat(f[0], 64)
			read = bytesOf(f[4])
		case strings.Contains(line, "Non-2xx or 3xx"), strings.Contains(line, "Socket errors"):
			return r, 0, errors.New(strings.TrimSpace(line))
		}
	}
	if r.rps == 0 || requests == 0 || r.p99 == 0 {
		return r, 0, fmt.Errorf("no result in\n%s", out)
	}
	r.bytes = read / requests
	return r, requests, nil
}

// bytesOf reads a wrk size (812.34KB, 25.12MB), which counts in 1024s.
func bytesOf(s string) float64 {
	for _, u := range []struct {
		suffix string
		bytes  float64
	}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.bytes
		}
	}
	return 0
}

// millis reads a wrk duration (850.00us, 1.23ms, 2.00s) in milliseconds.
func millis(s string) float64 {
	for _, u := range []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f * u.ms
		}
	}
	return 0
}

func summarize(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return median(v)
	}
	return wrkResult{rps: pick(func(r wrkResult) float64 { return r.rps }), p50: pick(func(r wrkResult) float64 { return r.p50 }),
		p99: pick(func(r wrkResult) float64 { return r.p99 }), cpu: pick(func(r wrkResult) float64 { return r.cpu }),
		bytes: pick(func(r wrkResult) float64 { return r.bytes })}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
