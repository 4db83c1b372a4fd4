package delivery_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/delivery/deliverytest"
	"github.com/mds-dev/mds/gray"
)

// grayLoad compiles the gray engine's load: one app, 50 live gray tasks of
// 5 rules each, sharing a whitelist of n users.
func grayLoad(tb testing.TB, n int) *delivery.Snapshot {
	tb.Helper()
	l := delivery.NewLive(deliverytest.Gray(50, n))
	if err := l.Refresh(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return l.Current()
}

// BenchmarkEvaluateGray is the load: 50 live tasks, 5 rules each, a
// 1,000,000-entry whitelist. Three devices:
//
//   - whitelisted: passes the newest task's rules and whitelist (the
//     common path of a gray release);
//   - current: already on the newest version, so nothing is newer;
//   - rejected: passes every rule of every task but no gate, so all 50
//     tasks are evaluated in full (the worst case).
func BenchmarkEvaluateGray(b *testing.B) {
	s := grayLoad(b, 1_000_000)
	current := deliverytest.GrayDevice(5_000_000, "3.49.0")
	current.Build = 349
	cases := []struct {
		name    string
		dev     *mds.Device
		offered bool
	}{
		{"whitelisted", deliverytest.GrayDevice(123_456, "2.0"), true},
		{"current", current, false},
		{"rejected", deliverytest.GrayDevice(5_000_000, "2.0"), false},
	}
	for _, c := range cases {
		if d, err := evaluate(s, c.dev, now); err != nil || (d.Offer != nil) != c.offered {
			b.Fatalf("%s: offer %v, %v; the fixture is off", c.name, d.Offer, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var dec delivery.Decision
			for b.Loop() {
				in := gray.NewInput(c.dev, netip.Addr{}, now)
				s.Evaluate(&in, nil, &dec)
			}
		})
	}
}

// BenchmarkEvaluateConfig measures a decision for every kind in an app of
// the reference load (20 live tasks), without configuration and with
// 2,000 keys in 10 namespaces and 20 live gray changes of it, whose
// audiences the device's decision now includes.
func BenchmarkEvaluateConfig(b *testing.B) {
	for _, c := range []struct {
		name string
		load *deliverytest.Load
	}{
		{"none", deliverytest.Reference(100, 20)},
		{"keys=2000,changes=20", deliverytest.Configured(100, 20, 2000, 10, 20)},
	} {
		s := delivery.Compile(c.load.Set, nil)
		devices := make([]*mds.Device, 256)
		for i := range devices {
			devices[i] = deliverytest.RefDevice(i, 100)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var dec delivery.Decision
			i := 0
			for b.Loop() {
				in := gray.NewInput(devices[i%len(devices)], netip.Addr{}, now)
				if err := s.Evaluate(&in, nil, &dec); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkWhitelistMemory reports the heap a compiled 1,000,000-entry
// whitelist holds (MiB/list), measured after garbage collection.
func BenchmarkWhitelistMemory(b *testing.B) {
	load := deliverytest.Gray(1, 1_000_000)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		l := delivery.NewLive(load)
		if err := l.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/list")
		runtime.KeepAlive(l)
	}
}

// BenchmarkRebuildAfterEdit measures a snapshot rebuild after one task
// edit with a 1,000,000-entry whitelist loaded (edit-ms), next to the first
// build that had to load the whitelist (initial-ms). The edit must not
// reload the whitelist.
func BenchmarkRebuildAfterEdit(b *testing.B) {
	ctx := context.Background()
	load := deliverytest.Gray(50, 1_000_000)
	l := delivery.NewLive(load)
	start := time.Now()
	if err := l.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	initial := time.Since(start)
	b.ResetTimer()
	for b.Loop() {
		load.Edit(load.Set.Apps[0].ID)
		if err := l.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := load.ListLoads.Load(); n != 1 {
		b.Fatalf("the whitelist was loaded %d times; edits must reuse it", n)
	}
	b.ReportMetric(float64(initial.Microseconds())/1000, "initial-ms")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "edit-ms")
}

// BenchmarkEditOneApp measures the snapshot update after a write to one
// app (edit-µs), at 100 and 1,000 apps of 20 live tasks: it recompiles that
// app alone, so it must not grow with the other apps. The first build of
// everything is reported beside it (initial-ms).
func BenchmarkEditOneApp(b *testing.B) {
	for _, apps := range []int{100, 1000} {
		b.Run(fmt.Sprintf("apps=%d", apps), func(b *testing.B) {
			ctx := context.Background()
			load := deliverytest.Reference(apps, 20)
			l := delivery.NewLive(load)
			start := time.Now()
			if err := l.Refresh(ctx); err != nil {
				b.Fatal(err)
			}
			initial := time.Since(start)
			i := 0
			b.ResetTimer()
			for b.Loop() {
				load.Edit(load.Set.Apps[i%apps].ID)
				i += 7
				if err := l.Refresh(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if l.Current().Offers() != apps*20 {
				b.Fatalf("%d offers after the edits, want %d", l.Current().Offers(), apps*20)
			}
			b.ReportMetric(float64(initial.Microseconds())/1000, "initial-ms")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "edit-µs")
		})
	}
}
