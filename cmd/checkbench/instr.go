package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Instruction counts: the server's own instructions per check, counted by
// valgrind's callgrind, which counts the same for the same binary and
// load whatever else the machine does. Throughput on a shared machine
// moves by tens of percent from one minute to the next; instructions do
// not, so two builds are told apart by them to a fraction of a percent.
// They leave out the kernel (the sockets), which is the same for both
// builds but for the bytes sent; the wrk rounds measure that.
//
// Each server runs under callgrind with counting off until the node has
// answered every device body once (its answers built and signed) and a
// warm-up of n checks; then n full checks are counted, and n 304s.

// instrServer is a server under callgrind.
type instrServer struct {
	*server
	out string // callgrind's output file, to which dumps add .1, .2, …
}

// startCounted starts argv (a server that listens where ready says)
// under callgrind, with counting off.
func startCounted(dir, name string, start func(wrap []string) (*server, error)) (*instrServer, error) {
	if _, err := exec.LookPath("valgrind"); err != nil {
		return nil, errors.New("valgrind is not on PATH: install Debian's valgrind to count instructions")
	}
	out := filepath.Join(dir, name+".callgrind")
	s, err := start([]string{"valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out})
	if err != nil {
		return nil, err
	}
	return &instrServer{server: s, out: out}, nil
}

// count runs n checks of bodies (with etags, for 304s) and returns the
// server's instructions per check: counting is switched on for them and
// dumped after.
func (s *instrServer) count(bodies [][]byte, etags []string, n int) (float64, error) {
	pid := strconv.Itoa(s.cmd.Process.Pid)
	if out, err := exec.Command("callgrind_control", "--instr=on", pid).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("callgrind_control --instr=on: %v: %s", err, out)
	}
	if err := checks(s.url, bodies, etags, n); err != nil {
		return 0, err
	}
	before, _ := filepath.Glob(s.out + ".*")
	if out, err := exec.Command("callgrind_control", "--dump", pid).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("callgrind_control --dump: %v: %s", err, out)
	}
	if out, err := exec.Command("callgrind_control", "--instr=off", pid).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("callgrind_control --instr=off: %v: %s", err, out)
	}
	dump := fmt.Sprintf("%s.%d", s.out, len(before)+1)
	total, err := callgrindTotal(dump)
	if err != nil {
		return 0, err
	}
	return float64(total) / float64(n), nil
}

// callgrindTotal reads the total of instructions from a callgrind dump:
// its totals line (its summary line, written before the dump's end, can
// be off for a dump of a program still running).
func callgrindTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "totals:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s has no totals line", path)
}

// checks sends n checks to url over 4 keep-alive connections, cycling
// through bodies, each with its ETag when etags are given; every answer
// must be a 200, or a 304 when an ETag was sent.
func checks(url string, bodies [][]byte, etags []string, n int) error {
	const conns = 4
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail error
	)
	for c := range conns {
		wg.Go(func() {
			for i := c; i < n; i += conns {
				j := i % len(bodies)
				req, _ := http.NewRequest(http.MethodPost, url+"/client/v1/check", bytes.NewReader(bodies[j]))
				req.Header.Set("Content-Type", "application/json")
				want := http.StatusOK
				if etags != nil {
					req.Header.Set("If-None-Match", etags[j])
					want = http.StatusNotModified
				}
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != want {
						err = fmt.Errorf("check of body %d: %d, want %d", j, resp.StatusCode, want)
					}
				}
				if err != nil {
					mu.Lock()
					fail = errors.Join(fail, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return fail
}

// instrRow is one server's instructions per check.
type instrRow struct {
	full, cached float64
}

// measureInstructions counts, for one deployment size, the instructions
// per check of bare, mds and the baseline (if any), and prints a row per
// answer.
func measureInstructions(cfg config, dir, based string, apps, n int, bodies [][]byte) error {
	type target struct {
		name  string
		start func(wrap []string) (*server, error)
	}
	targets := []target{
		{"bare", func(wrap []string) (*server, error) { return startBareWrapped(wrap) }},
		{"mds", func(wrap []string) (*server, error) { return startMDSWrapped(wrap, cfg.mds, dir) }},
	}
	if based != "" {
		targets = append(targets, target{"baseline", func(wrap []string) (*server, error) { return startMDSWrapped(wrap, cfg.baseline, based) }})
	}
	rows := make([]instrRow, len(targets))
	for i, t := range targets {
		s, err := startCounted(filepath.Dir(dir), fmt.Sprintf("%s-%d", t.name, apps), t.start)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		row, err := func() (instrRow, error) {
			defer s.stop()
			etags, _, err := fetchETags(s.url, bodies)
			if err != nil {
				return instrRow{}, err
			}
			if t.name == "bare" {
				etags = nil // bare has no 304: its row counts full answers twice
			}
			if err := checks(s.url, bodies, nil, n); err != nil {
				return instrRow{}, err
			}
			var r instrRow
			if r.full, err = s.count(bodies, nil, n); err != nil {
				return r, err
			}
			r.cached, err = s.count(bodies, etags, n)
			return r, err
		}()
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rows[i] = row
	}
	for _, cached := range []bool{false, true} {
		answer, pick := "full", func(r instrRow) float64 { return r.full }
		if cached {
			answer, pick = "304", func(r instrRow) float64 { return r.cached }
		}
		bare, mds := rows[0].full, pick(rows[1])
		fmt.Printf("%-5d %-6s %12.0f %12.0f %6.3f", apps, answer, bare, mds, mds/bare)
		if len(rows) > 2 {
			base := pick(rows[2])
			fmt.Printf(" %12.0f %6.3f %8.3f", base, base/bare, mds/base)
		}
		fmt.Println()
	}
	return nil
}
