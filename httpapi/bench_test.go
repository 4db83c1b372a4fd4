package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/release"
	"github.com/mds-dev/mds/version"
)

// staticLive serves one fixed LiveSet, so a benchmark can load thousands of
// tasks without writing them through a database first.
type staticLive struct{ set *mds.LiveSet }

func (s staticLive) Revision(context.Context) (int64, error)        { return s.set.Revision, nil }
func (s staticLive) LoadLive(context.Context) (*mds.LiveSet, error) { return s.set, nil }
func (s staticLive) LoadWhitelist(context.Context, int64, func(string) error) (int64, error) {
	return 0, fmt.Errorf("no whitelists in this load")
}

// referenceLoad is the load: apps × tasks per app, across
// platforms, channels and version ranges, all live.
func referenceLoad(apps, tasksPerApp int) *mds.LiveSet {
	set := &mds.LiveSet{Revision: 1}
	var id int64
	next := func() int64 { id++; return id }
	for i := range apps {
		a := &mds.App{ID: next(), Slug: fmt.Sprintf("app-%d", i), Name: fmt.Sprintf("App %d", i),
			Key: fmt.Sprintf("ak_bench%04d", i), Platforms: mds.Platforms}
		set.Apps = append(set.Apps, a)
		for j := range tasksPerApp {
			p := &mds.Package{ID: next(), AppID: a.ID, Platform: mds.Platforms[j%3],
				Version: fmt.Sprintf("%d.%d.0", 2+j/3, j%3), Build: int64(200 + j), Notes: "Bug fixes and a faster start.",
				Source: mds.SourceBlob, SHA256: fmt.Sprintf("%064x", id), Size: 48 << 20, Network: mds.NetworkAny,
				AppVersions: []version.Range{{Min: "1.0.0", Max: fmt.Sprintf("%d.0.0", 2+j/3)}}}
			if j%5 == 0 {
				p.Channel = "huawei"
			}
			t := &mds.Task{ID: next(), AppID: a.ID, PackageID: p.ID, Kind: mds.KindUpgrade, Mode: mds.ModeSingle,
				RemindInterval: mds.DefaultRemindInterval, Status: mds.StatusLive, Stage: mds.StageOfficial}
			set.Packages = append(set.Packages, p)
			set.Tasks = append(set.Tasks, t)
		}
	}
	return set
}

// deviceBodies are check bodies for devices spread over the apps, most of
// which get an upgrade.
func deviceBodies(apps int) [][]byte {
	var bodies [][]byte
	for i := range 512 {
		d := mds.Device{AppKey: fmt.Sprintf("ak_bench%04d", i%apps), Platform: mds.Platforms[i%3],
			AppVersion: fmt.Sprintf("%d.%d.%d", 1+i%4, i%7, i%3), Build: int64(100 + i%50), DeviceID: fmt.Sprintf("device-%08d", i*7919),
			UserID: fmt.Sprintf("user-%d", i), Model: "Pixel 9", Brand: "Google", OSVersion: "15", Network: "wifi",
			Region: "CN-31", City: "Shanghai", Channel: "xiaomi", Language: "zh-CN", Attributes: map[string]string{"tier": "gold"}}
		b, _ := json.Marshal(d)
		bodies = append(bodies, b)
	}
	return bodies
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

// BenchmarkCheckHTTP measures the check endpoint over real HTTP with 100 apps
// × 20 live tasks loaded, against a bare net/http JSON handler driven by the
// same load generator, connection count and bodies. The two are interleaved
// in rounds so that noise on a shared machine hits both alike. ratio is the
// check endpoint's throughput as a fraction of the baseline's.
func BenchmarkCheckHTTP(b *testing.B) {
	const apps, tasks, conns = 100, 20, 16
	live := release.NewLive(staticLive{referenceLoad(apps, tasks)}, release.Options{BaseURL: "http://127.0.0.1:8080"})
	if err := live.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	checkSrv := httptest.NewServer(httpapi.New(httpapi.Config{Live: live}))
	defer checkSrv.Close()
	bareSrv := httptest.NewServer(http.HandlerFunc(bareHandler))
	defer bareSrv.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	client := &http.Client{Transport: tr}
	bodies := deviceBodies(apps)

	// The fixture must exercise the real path: most devices get an upgrade.
	upgrades := 0
	for _, body := range bodies[:100] {
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
	if upgrades < 50 {
		b.Fatalf("only %d of 100 sample devices get an upgrade; the fixture is off", upgrades)
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
