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
	"net/netip"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/signing"
)

// bodies encodes devices as check bodies.
func bodies(devices []*mds.Device) [][]byte {
	out := make([][]byte, len(devices))
	for i, d := range devices {
		out[i], _ = json.Marshal(d)
	}
	return out
}

// fullSample is a preview sample filled, for every app of fixture, with
// the devices of bodies, as on a node that has served them a while: the
// steady state, where a check is recorded one in every few, in place.
func fullSample(tb testing.TB, fixture *deliverytest.Load, bodies [][]byte) *delivery.Recent {
	recent := delivery.NewRecent(delivery.DefaultSampleBytes, delivery.DefaultSamplePerApp, delivery.DefaultSampleEvery)
	set, err := fixture.LoadLive(context.Background(), 0)
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
	key, err := signing.Generate(signing.ECDSAP256)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Live: live, Recent: fullSample(tb, fixture, bodies), AnswerKeys: []*signing.PrivateKey{key},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tb.Cleanup(srv.Close)
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
// decode, evaluate, sample, answer, count — with no network and no load
// generator (cmd/checkbench measures the whole server from outside): on
// the reference load (100 apps × 20 tasks) for full answers and for 304s,
// the same devices spread over 1,000 apps (a larger working set, as in the
// outside benchmark's second deployment), and on the gray load (50 gray
// tasks of 5 rules, a 1,000,000-entry whitelist) with whitelisted, current
// and rejected devices.
func BenchmarkCheckHandler(b *testing.B) {
	var ref, ref1000, grayed, oneApp []*mds.Device
	for i := range 512 {
		ref = append(ref, deliverytest.RefDevice(i, 100))
		ref1000 = append(ref1000, deliverytest.RefDevice(i, 1000))
	}
	for i := range 16384 {
		oneApp = append(oneApp, deliverytest.RefDevice(i, 1))
	}
	for i := range 510 {
		switch i % 3 {
		case 0:
			grayed = append(grayed, deliverytest.GrayDevice(i*1000, "2.0"))
		case 1:
			d := deliverytest.GrayDevice(2_000_000+i, "3.49.0")
			d.Build = 349
			grayed = append(grayed, d)
		default:
			grayed = append(grayed, deliverytest.GrayDevice(2_000_000+i, "2.0"))
		}
	}
	for _, c := range []struct {
		name    string
		load    func() *deliverytest.Load
		devices []*mds.Device
		etags   bool
	}{
		{"full", func() *deliverytest.Load { return deliverytest.Reference(100, 20) }, ref, false},
		{"not_modified", func() *deliverytest.Load { return deliverytest.Reference(100, 20) }, ref, true},
		{"full_1000_apps", func() *deliverytest.Load { return deliverytest.Reference(1000, 20) }, ref1000, false},
		{"gray", func() *deliverytest.Load { return deliverytest.Gray(50, 1_000_000) }, grayed, false},
		// Every app with 2,000 configuration keys in 10 namespaces and 20
		// live gray changes: compare with full and not_modified.
		{"configured", func() *deliverytest.Load { return deliverytest.Configured(100, 20, 2000, 10, 20) }, ref, false},
		{"configured_not_modified", func() *deliverytest.Load { return deliverytest.Configured(100, 20, 2000, 10, 20) }, ref, true},
		// The worst case: 16,384 devices of one app in as many
		// combinations of state and gray changes, more than the answers an
		// app keeps per period (4,096), so that every answer is signed anew.
		{"configured_unkept", func() *deliverytest.Load { return deliverytest.Configured(1, 20, 2000, 10, 20) }, oneApp, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			rig := newCheckRig(b, c.load(), bodies(c.devices), c.etags)
			for i := range rig.reqs { // the steady state: each answer made once
				rig.serve(i)
			}
			b.ReportAllocs()
			i := 0
			rig.w.n = 0
			for b.Loop() {
				rig.serve(i % len(rig.reqs))
				i++
			}
			b.ReportMetric(float64(rig.w.n)/float64(i), "B/answer")
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
	var devices, patched, holding []*mds.Device
	hotpatched := deliverytest.Hotpatched(100, 20)
	offline := deliverytest.Offline(100, 20, 8)
	configured := deliverytest.Configured(100, 20, 2000, 10, 20)
	for i := range 64 {
		devices = append(devices, deliverytest.RefDevice(i, 100))
		patched = append(patched, deliverytest.HotpatchedDevice(hotpatched, i, 100))
		holding = append(holding, deliverytest.OfflineDevice(i, 100, 8))
	}
	for _, c := range []struct {
		load    *deliverytest.Load
		devices []*mds.Device
		etags   bool
	}{
		{deliverytest.Reference(100, 20), devices, false},
		{deliverytest.Reference(100, 20), devices, true},
		{hotpatched, patched, false},
		{hotpatched, patched, true},
		{offline, holding, false}, // offered whole, by deltas, or nothing
		{offline, holding, true},
		{configured, devices, false}, // each under its own set of gray changes
		{configured, devices, true},
	} {
		etags := c.etags
		// What the devices are told covers what the load is for.
		told := map[string]int{}
		snap := delivery.Compile(c.load.Set, nil)
		for _, d := range c.devices {
			in := gray.NewInput(d, netip.Addr{}, time.Now())
			var dec delivery.Decision
			if err := snap.Evaluate(&in, nil, &dec); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.load == configured:
				told[fmt.Sprintf("set %x", dec.Config.Admitted)]++
			case dec.Hotpatch.Rollback:
				told["rollback"]++
			case dec.Hotpatch.Offer != nil:
				told["apply"]++
			case len(dec.Offline) == 0:
				told["no package"]++
			case dec.Offline[0].Delta != nil:
				told["deltas"]++
			default:
				told["whole"]++
			}
		}
		switch {
		case c.load == hotpatched && (told["rollback"] == 0 || told["apply"] == 0),
			c.load == offline && (told["no package"] == 0 || told["deltas"] == 0 || told["whole"] == 0),
			c.load == configured && len(told) < 8: // each under one of the sets of gray changes
			t.Fatalf("the load tells %v", told)
		}
		rig := newCheckRig(t, c.load, bodies(c.devices), etags)
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
