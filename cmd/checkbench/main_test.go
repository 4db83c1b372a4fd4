package main

import (
	"math"
	"strings"
	"testing"
)

// A report of wrk 4.1 as Debian ships it, run with --latency.
const wrkReport = `Running 10s test @ http://127.0.0.1:38047/client/v1/check
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms    1.80ms  41.07ms   92.35%
    Req/Sec    59.47k     3.21k   64.10k    80.00%
  Latency Distribution
     50%  880.00us
     75%    1.29ms
     90%    2.47ms
     99%    6.39ms
  591800 requests in 10.00s, 366.81MB read
Requests/sec:  59180.00
Transfer/sec:     36.68MB
`

func TestParseWrk(t *testing.T) {
	r, requests, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= want*1e-3 }
	if requests != 591800 || r.rps != 59180 || !near(r.p50, 0.88) || !near(r.p99, 6.39) || !near(r.bytes, 366.81*(1<<20)/591800) {
		t.Errorf("parseWrk = %+v, %v requests; want 59180 r/s, p50 0.88 ms, p99 6.39 ms, %.0f bytes from 591800 requests",
			r, requests, 366.81*(1<<20)/591800)
	}
	for _, bad := range []string{
		strings.Replace(wrkReport, "Requests/sec:", "Non-2xx or 3xx responses: 12\nRequests/sec:", 1),
		strings.Replace(wrkReport, "Requests/sec:", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec:", 1),
		"unable to connect to 127.0.0.1:1 Connection refused\n",
	} {
		if _, _, err := parseWrk(bad); err == nil {
			t.Errorf("parseWrk accepted a run that failed:\n%s", bad)
		}
	}
}

func TestUnits(t *testing.T) {
	for s, want := range map[string]float64{"850.00us": 0.85, "1.23ms": 1.23, "2.00s": 2000, "1.00m": 60000} {
		if got := millis(s); math.Abs(got-want) > 1e-9 {
			t.Errorf("millis(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]float64{"512B": 512, "1.50KB": 1536, "2.00MB": 2 << 20, "1.00GB": 1 << 30} {
		if got := bytesOf(s); got != want {
			t.Errorf("bytesOf(%q) = %v, want %v", s, got, want)
		}
	}
}
