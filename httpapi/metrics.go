package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/offline"
)

// metrics are labelled by route pattern and outcome only: a per-device or
// per-app label would grow without bound at hundreds of millions of devices.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	checks    *prometheus.CounterVec
	outcomes  map[string]prometheus.Counter // the checks counter of each outcome, resolved once
	byRequest sync.Map                      // seriesKey → *series
	uploaded  prometheus.Counter
	passes    prometheus.Histogram // watch evaluation passes
	passed    prometheus.Counter   // watchers evaluated
	dropped   prometheus.Counter   // watchers dropped as too slow
}

// newMetrics registers the collectors; the snapshot gauges read live at
// scrape time, so nothing has to be told of a swap.
func newMetrics(live *delivery.Live, recent *delivery.Recent) *metrics {
	snapshot := func(f func(*delivery.Snapshot) float64) func() float64 {
		return func() float64 {
			if s := live.Current(); s != nil {
				return f(s)
			}
			return 0
		}
	}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mds_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mds_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mds_checks_total", Help: "Device checks by outcome: upgrade, hotpatch, offline, none, not_modified, unknown_app, invalid, timeout, unavailable.",
		}, []string{"outcome"}),
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mds_upload_bytes_total", Help: "Bytes of package content stored.",
		}),
		passes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mds_watch_pass_seconds", Help: "Time to evaluate the watchers a snapshot change or sweep concerns.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		passed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mds_watch_evaluations_total", Help: "Watchers evaluated, on snapshot changes and sweeps.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mds_watch_dropped_total", Help: "Watchers dropped because their connection did not take an event in time.",
		}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.checks, m.uploaded, m.passes, m.passed, m.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_snapshot_revision", Help: "Store revision of the snapshot that checks are answered from.",
		}, snapshot(func(s *delivery.Snapshot) float64 { return float64(s.Revision) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_snapshot_live_tasks", Help: "Live release tasks in the current snapshot.",
		}, snapshot(func(s *delivery.Snapshot) float64 { return float64(s.Offers()) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_preview_sample_bytes", Help: "Memory the sample of recently checking devices holds, within its budget.",
		}, func() float64 { return float64(recent.Bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_snapshot_build_seconds", Help: "Time the current snapshot took to load and compile.",
		}, func() float64 { return live.BuildTime().Seconds() }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.outcomes = map[string]prometheus.Counter{}
	for _, o := range []string{"upgrade", "hotpatch", "offline", "none", "not_modified", "unknown_app", "invalid", "timeout", "unavailable"} {
		m.outcomes[o] = m.checks.WithLabelValues(o) // also exports zeroes, so rates work from the start
	}
	return m
}

// watching registers the gauges read off the hub.
func (m *metrics) watching(hub interface {
	Len() int
	Sent() int64
}) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_watchers", Help: "Devices watching this node for changes.",
		}, func() float64 { return float64(hub.Len()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mds_watch_events_total", Help: "Answers sent to watchers because theirs changed.",
		}, func() float64 { return float64(hub.Sent()) }))
}

// building registers the metrics read off this node's delta builder.
func (m *metrics) building(b *offline.Builder) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mds_deltas_building", Help: "Offline package deltas this node is building.",
		}, func() float64 { return float64(b.Stats().Building) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mds_delta_build_seconds_total", Help: "Time this node spent building offline package deltas.",
		}, func() float64 { return b.Stats().Seconds }))
	for _, st := range []mds.DeltaStatus{mds.DeltaReady, mds.DeltaSkipped, mds.DeltaFailed, mds.DeltaPending} {
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "mds_delta_builds_total", Help: "Offline package delta builds this node ended, by outcome: ready, skipped, failed, pending (to be tried again).",
			ConstLabels: prometheus.Labels{"status": string(st)},
		}, func() float64 { return float64(b.Stats().Built[st]) }))
	}
}

// watchPass records one evaluation pass of watchers.
func (m *metrics) watchPass(d time.Duration, evaluated int) {
	m.passes.Observe(d.Seconds())
	m.passed.Add(float64(evaluated))
}

func (m *metrics) watchDropped() { m.dropped.Inc() }

// check counts a check by its outcome.
func (m *metrics) check(outcome string) { m.outcomes[outcome].Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// instrument counts and times every request by the pattern that served it.
// The counters and histograms of each route, method and status are looked
// up once and kept, so counting allocates nothing.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := statusWriters.Get().(*statusWriter)
		*sw = statusWriter{ResponseWriter: w, status: http.StatusOK, start: time.Now()}
		defer func() {
			*sw = statusWriter{}
			statusWriters.Put(sw)
		}()
		next.ServeHTTP(sw, r)
		route := r.Pattern // set in place by ServeMux
		if route == "/" {
			route = "unmatched" // the catch-all: any path, so one label
		}
		m.series(route, r.Method, sw.status).observe(time.Since(sw.start))
	})
}

// seriesKey names the series of a request. Route patterns and methods are
// a few known strings, and statuses a few numbers, so their map is small.
type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer
}

func (s *series) observe(d time.Duration) {
	s.requests.Inc()
	s.latency.Observe(d.Seconds())
}

func (m *metrics) series(route, method string, status int) *series {
	k := seriesKey{route, method, status}
	if v, ok := m.byRequest.Load(k); ok {
		return v.(*series)
	}
	if !knownMethod(method) {
		k.method = "other" // the method is the client's to choose: bound it
	}
	v, _ := m.byRequest.LoadOrStore(k, &series{
		requests: m.requests.WithLabelValues(k.route, k.method, strconv.Itoa(status)),
		latency:  m.latency.WithLabelValues(k.route),
	})
	return v.(*series)
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// requestTime is when the request began, as instrument saw it: one clock
// reading serves the whole request.
func requestTime(w http.ResponseWriter) time.Time {
	if sw, ok := w.(*statusWriter); ok {
		return sw.start
	}
	return time.Now()
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	start       time.Time
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps sendfile for blob downloads: without it io.Copy would see
// only the wrapper and copy through a user-space buffer.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wroteHeader = true
	return io.Copy(w.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
