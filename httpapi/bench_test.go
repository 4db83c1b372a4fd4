package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/httpapi"
)

// bodies encodes devices as check bodies.
func bodies(devices []*mds.Device) [][]byte {
	out := make([][]byte, len(devices))
	for i, d := range devices {
		out[i], _ = json.Marshal(d)
	}
	return out
}

// bareAnswer is what the baseline handler sends: about the size of a real answer.
type bareAnswer struct {
	Upgrade map[string]any `json:"upgrade"`
}

// bareHandler is the yardstick: a plain net/http JSON handler that decodes
// the same body and encodes an answer of similar size, with no logic.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	var d mds.Device
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	b, _ := json.Marshal(bareAnswer{Upgrade: map[string]any{"task_id": 1, "version": "2.1.0", "mode": "single",
		"remind": true, "notes": "Bug fixes and a faster start.", "url": "http://127.0.0.1/client/v1/blobs/" + d.DeviceID,
		"sha256": d.AppKey, "size": 1 << 20, "network": "any"}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// load sends n POSTs to url over conns keep-alive connections and returns
// the wall time taken.
func load(tb testing.TB, client *http.Client, url string, bodies [][]byte, n, conns int) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				resp, err := client.Post(url, "application/json", bytes.NewReader(bodies[i%int64(len(bodies))]))
				if err != nil {
					failed.Store(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Store(fmt.Errorf("status %d", resp.StatusCode))
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkCheckHTTP measures the check endpoint over real HTTP with the
// core service's load, 100 apps × 20 live tasks, against a bare net/http
// JSON handler driven by the same load generator, connection count and
// bodies. The two are interleaved in rounds so that noise on a shared
// machine hits both alike. ratio is the check endpoint's throughput as a
// fraction of the baseline's.
func BenchmarkCheckHTTP(b *testing.B) {
	var devices []*mds.Device
	for i := range 512 {
		devices = append(devices, deliverytest.RefDevice(i, 100))
	}
	benchCheck(b, deliverytest.Reference(100, 20), bodies(devices))
}

// BenchmarkCheckHTTPGray is the same measurement with the gray engine's
// load: one app, 50 live gray tasks of 5 rules each, a 1,000,000-entry
// whitelist. A third of the devices are whitelisted, a third are already
// current, and a third pass every rule but no gate (all 50 tasks evaluated).
func BenchmarkCheckHTTPGray(b *testing.B) {
	var devices []*mds.Device
	for i := range 510 {
		switch i % 3 {
		case 0:
			devices = append(devices, deliverytest.GrayDevice(i*1000, "2.0"))
		case 1:
			d := deliverytest.GrayDevice(2_000_000+i, "3.49.0")
			d.Build = 349
			devices = append(devices, d)
		default:
			devices = append(devices, deliverytest.GrayDevice(2_000_000+i, "2.0"))
		}
	}
	benchCheck(b, deliverytest.Gray(50, 1_000_000), bodies(devices))
}

// fullSample is a preview sample filled, for every app of fixture, with
// the devices of bodies, as on a node that has served them a while: the
// steady state, where a check is recorded one in every few, in place.
func fullSample(tb testing.TB, fixture *deliverytest.Load, bodies [][]byte) *delivery.Recent {
	recent := delivery.NewRecent(delivery.DefaultSampleBytes, delivery.DefaultSamplePerApp, delivery.DefaultSampleEvery)
	set, err := fixture.LoadLive(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	devices := make([]mds.Device, len(bodies))
	for i, b := range bodies {
		if err := json.Unmarshal(b, &devices[i]); err != nil {
			tb.Fatal(err)
		}
	}
	for _, a := range set.Apps {
		for i := range 2 * delivery.DefaultSamplePerApp {
			d := devices[i%len(devices)]
			d.AppKey = a.Key
			recent.Record(a.ID, &gray.Input{Device: &d, Now: time.Now()})
		}
	}
	return recent
}

func benchCheck(b *testing.B, fixture *deliverytest.Load, bodies [][]byte) {
	const conns = 16
	live := delivery.NewLive(fixture)
	if err := live.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	// Measure the steady state: each app's preview sample already full, so
	// checks are sampled one in every few as on a node that has run a while.
	checkSrv := httptest.NewServer(httpapi.New(httpapi.Config{Live: live, Recent: fullSample(b, fixture, bodies), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer checkSrv.Close()
	bareSrv := httptest.NewServer(http.HandlerFunc(bareHandler))
	defer bareSrv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	client := &http.Client{Transport: tr}

	// The fixture must exercise the real path: some devices get an upgrade.
	upgrades := 0
	for _, body := range bodies[:90] {
		resp, err := client.Post(checkSrv.URL+"/client/v1/check", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var a struct{ Upgrade *struct{ Version string } }
		json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if a.Upgrade != nil {
			upgrades++
		}
	}
	if upgrades < 20 {
		b.Fatalf("only %d of 90 sample devices get an upgrade; the fixture is off", upgrades)
	}

	const round = 2000
	var base, check time.Duration
	done := 0
	b.ResetTimer()
	for done < b.N {
		n := min(round, b.N-done)
		base += load(b, client, bareSrv.URL, bodies, n, conns)
		check += load(b, client, checkSrv.URL+"/client/v1/check", bodies, n, conns)
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(check.Nanoseconds())/float64(b.N), "check-ns/req")
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "baseline-ns/req")
	b.ReportMetric(base.Seconds()/check.Seconds(), "ratio")
}

// discard is a ResponseWriter that keeps nothing but its header map, which
// it clears for the next request as net/http gives each request a new one.
type discard struct {
	h      http.Header
	status int
	n      int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.status = code }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// SetReadDeadline is there as on a real connection's writer.
func (d *discard) SetReadDeadline(time.Time) error { return nil }

// checkRig drives the device handler directly, with no network and no
// load generator, so that what it measures is the handler's own cost.
type checkRig struct {
	h      http.Handler
	reqs   []*http.Request
	bodies [][]byte
	rd     []*bytes.Reader
	w      discard
}

func newCheckRig(tb testing.TB, fixture *deliverytest.Load, bodies [][]byte, etags bool) *checkRig {
	live := delivery.NewLive(fixture)
	if err := live.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Live: live, Recent: fullSample(tb, fixture, bodies), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rig := &checkRig{h: srv.DeviceHandler(), bodies: bodies, w: discard{h: http.Header{}}}
	for _, b := range bodies {
		rd := bytes.NewReader(b)
		r := httptest.NewRequest(http.MethodPost, "/client/v1/check", rd)
		r.RemoteAddr = "10.1.2.3:40000"
		r.Header.Set("Content-Type", "application/json")
		rig.reqs = append(rig.reqs, r)
		rig.rd = append(rig.rd, rd)
	}
	if etags {
		for i := range rig.reqs {
			rig.serve(i)
			if rig.w.status != http.StatusOK {
				tb.Fatalf("body %d: status %d", i, rig.w.status)
			}
			rig.reqs[i].Header.Set("If-None-Match", rig.w.h.Get("Etag"))
		}
	}
	return rig
}

// serve sends request i again.
func (rig *checkRig) serve(i int) {
	rig.rd[i].Reset(rig.bodies[i])
	clear(rig.w.h)
	rig.w.status = http.StatusOK
	rig.h.ServeHTTP(&rig.w, rig.reqs[i])
}

// BenchmarkCheckHandler is the device handler's own cost per check —
// decode, evaluate, sample, answer, count — over the reference load, for
// full answers and for 304s.
func BenchmarkCheckHandler(b *testing.B) {
	var devices []*mds.Device
	for i := range 512 {
		devices = append(devices, deliverytest.RefDevice(i, 100))
	}
	for _, c := range []struct {
		name  string
		etags bool
	}{{"full", false}, {"not_modified", true}} {
		b.Run(c.name, func(b *testing.B) {
			rig := newCheckRig(b, deliverytest.Reference(100, 20), bodies(devices), c.etags)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rig.serve(i % len(rig.reqs))
				i++
			}
		})
	}
}

// TestCheckDoesNotAllocate: in the steady state a check — decode,
// evaluate, sample, answer, count — allocates nothing, for full answers
// and for 304s alike.
func TestCheckDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	var devices []*mds.Device
	for i := range 64 {
		devices = append(devices, deliverytest.RefDevice(i, 100))
	}
	for _, etags := range []bool{false, true} {
		rig := newCheckRig(t, deliverytest.Reference(100, 20), bodies(devices), etags)
		for i := range rig.reqs { // the first check of an offer encodes its section
			rig.serve(i)
		}
		i := 0
		allocs := testing.AllocsPerRun(2000, func() {
			rig.serve(i % len(rig.reqs))
			i++
		})
		want := http.StatusOK
		if etags {
			want = http.StatusNotModified
		}
		if rig.w.status != want {
			t.Fatalf("status %d, want %d", rig.w.status, want)
		}
		if allocs != 0 {
			t.Errorf("a check (304s: %v) allocates %.2f times", etags, allocs)
		}
	}
}
