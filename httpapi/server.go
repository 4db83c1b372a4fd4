// Package httpapi serves mds over HTTP: the device API under /client/v1
// (hand-written, it is the hot path), the management API under /api/v1
// (described by OpenAPI, served by huma), health and metrics. The two APIs
// can face different networks: DeviceHandler and ManagementHandler serve
// one each, and Server serves both.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/watch"
)

// Config is what a Server is built from.
type Config struct {
	Store mds.Store
	Blobs mds.BlobStore
	// Live holds the snapshot that checks are answered from; the server
	// refreshes it after each write it makes, and hears of its swaps
	// (Live.OnSwap, which New sets) to tell watchers of their changes.
	Live *delivery.Live
	// PublicURL is where devices reach the device API, without a trailing
	// slash, e.g. "https://mds.example.com": download links and install
	// manifests in answers are built on it. iOS requires https for
	// enterprise manifests.
	PublicURL string
	// Admissions remembers capped-window admissions; defaults to one over
	// Store on the same clock.
	Admissions *delivery.Admissions
	// Recent samples checking devices for audience previews; defaults to
	// the delivery package's defaults (64 MiB for the node, 2,000 devices
	// per app, one check in 8 once full).
	Recent *delivery.Recent
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// when working out a device's address; none by default.
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// Now is the clock of the whole server; the store and admissions must
	// run on the same one. Defaults to time.Now.
	Now func() time.Time
	// MaxUpload bounds one uploaded package, in bytes.
	MaxUpload int64
	// SpoolDir holds uploads being checked before they are stored
	// (whitelist files). It should be swept of leftovers of killed
	// processes, as the blob store's per-process temp directory is.
	SpoolDir string
	// BlobMaxAge is how long devices and CDNs may keep a downloaded file
	// without asking again; see blob. Defaults to DefaultBlobMaxAge.
	BlobMaxAge time.Duration
	// Version is reported in the OpenAPI document.
	Version string
	// AnswerKeys are the deployment's keys, which sign every check answer;
	// at least one. Each answer carries a signature by each, so that
	// devices trusting an old key or a new one both verify it.
	AnswerKeys []*signing.PrivateKey
	// AnswerTTL is how long a signed answer stays valid; answers are
	// signed anew every half of it. Defaults to DefaultAnswerTTL.
	AnswerTTL time.Duration
	// BodyTimeout bounds how long a check body may take to arrive and how
	// long an upload may stall, so slow clients cannot pin connections and
	// temp files. Defaults to DefaultBodyTimeout.
	BodyTimeout time.Duration
	// Watch tunes the watchers of this node (watch.Config: how many, how
	// often swept, heartbeats); its Now and callbacks are the server's.
	Watch watch.Config
	// WatchWriteTimeout is how long a watcher's connection may take to
	// accept one event before the watcher is dropped as too slow.
	// Defaults to DefaultWatchWriteTimeout.
	WatchWriteTimeout time.Duration
	// Deltas is this node's builder of offline package deltas, if it runs
	// one: the server wakes it when a version is released here, and
	// reports what it does in its metrics.
	Deltas *offline.Builder
}

// Defaults.
const (
	DefaultBodyTimeout = 30 * time.Second
	DefaultMaxUpload   = 8 << 30
	DefaultBlobMaxAge  = time.Hour
	// DefaultWatchWriteTimeout: an event is a few kilobytes, which a
	// connection's buffers take at once unless its device stopped reading.
	DefaultWatchWriteTimeout = 5 * time.Second
	// MaxHeaderBytes bounds a request's headers; give it to http.Server
	// and WrapListener.
	MaxHeaderBytes = 64 << 10
)

// maxCheckBody bounds a check request; a real one is well under 2 KiB.
const maxCheckBody = 64 << 10

// Server is the HTTP face of mds.
type Server struct {
	store      mds.Store
	blobs      mds.BlobStore
	live       *delivery.Live
	admit      *delivery.Admissions
	deltas     *offline.Builder // nil when this node builds none
	recent     *delivery.Recent
	links      links
	answers    answerSet // on links
	proxies    []netip.Prefix
	log        *slog.Logger
	now        func() time.Time
	realClock  bool // now is time.Now: a request's start time will do
	maxUpload  int64
	spool      string
	blobMaxAge time.Duration
	bodyWait   time.Duration
	metrics    *metrics
	api        huma.API
	device     http.Handler
	management http.Handler
	watchers   *watch.Hub[watchMsg]
	watchWrite time.Duration
	stop       chan struct{} // closed by Close
	closing    sync.Once
	stopped    sync.WaitGroup
}

// New builds a Server and its routes.
func New(cfg Config) *Server {
	s := &Server{
		store: cfg.Store, blobs: cfg.Blobs, live: cfg.Live, admit: cfg.Admissions, recent: cfg.Recent,
		links: links{base: strings.TrimSuffix(cfg.PublicURL, "/")}, proxies: cfg.TrustedProxies, log: cfg.Log, now: cfg.Now,
		maxUpload: cfg.MaxUpload, spool: cfg.SpoolDir, blobMaxAge: cfg.BlobMaxAge, bodyWait: cfg.BodyTimeout,
		watchWrite: cfg.WatchWriteTimeout, deltas: cfg.Deltas, stop: make(chan struct{}),
	}
	s.answers = answerSet{links: &s.links, signer: newSigner(cfg.AnswerKeys, cfg.AnswerTTL)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now, s.realClock = time.Now, true
	}
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUpload
	}
	if s.bodyWait <= 0 {
		s.bodyWait = DefaultBodyTimeout
	}
	if s.blobMaxAge <= 0 {
		s.blobMaxAge = DefaultBlobMaxAge
	}
	if s.watchWrite <= 0 {
		s.watchWrite = DefaultWatchWriteTimeout
	}
	if s.admit == nil {
		s.admit = delivery.NewAdmissions(s.store, s.now, func(err error) { s.log.Error("window admission failed", "err", err) })
	}
	if s.recent == nil {
		s.recent = delivery.NewRecent(delivery.DefaultSampleBytes, delivery.DefaultSamplePerApp, delivery.DefaultSampleEvery)
	}

	s.metrics = newMetrics(s.live, s.recent)
	s.watchers = s.newWatchers(cfg.Watch)
	s.metrics.watching(s.watchers)
	if s.deltas != nil {
		s.metrics.building(s.deltas)
	}
	s.live.OnSwap = func(apps []int64, all bool) {
		if all {
			s.watchers.Changed()
		} else if len(apps) > 0 {
			s.watchers.Changed(apps...)
		}
	}
	s.stopped.Go(func() { s.watchers.Run(s.stop) })

	device := http.NewServeMux()
	device.HandleFunc("POST /client/v1/check", s.check)
	device.HandleFunc("POST /client/v1/watch", s.watch)
	device.HandleFunc("GET /client/v1/blobs/{sha256}", s.blob)
	device.HandleFunc("GET /client/v1/manifests/{appkey}/{file}", s.manifest)
	device.HandleFunc("GET /client/v1/config/{sha256}", s.serveConfig)
	s.health(device)
	device.Handle("/", s.unmatched(device))
	s.device = s.canonical(s.metrics.instrument(device))

	mgmt := http.NewServeMux()
	s.api = humago.New(mgmt, apiConfig(cfg.Version))
	s.api.UseMiddleware(s.authenticate)
	s.registerApps()
	s.registerPackages()
	s.registerTasks()
	s.registerConfig()
	s.registerTokens()
	s.registerRules()
	s.registerWhitelists()
	s.registerExplain()
	s.registerKeys()
	s.registerOffline()
	mgmt.HandleFunc("POST /api/v1/apps/{app}/blobs", s.upload)
	s.documentUpload()
	mgmt.HandleFunc("POST /api/v1/apps/{app}/hotpatches", s.uploadHotpatch)
	s.documentHotpatchUpload()
	mgmt.HandleFunc("POST /api/v1/apps/{app}/offline", s.uploadOffline)
	s.documentOfflineUpload()
	mgmt.HandleFunc("PUT /api/v1/apps/{app}/whitelists/{id}/entries", s.replaceWhitelist)
	s.documentWhitelistUpload()
	s.routeFiles(mgmt)
	mgmt.Handle("GET /metrics", s.metrics.handler())
	s.health(mgmt)
	mgmt.Handle("/", s.unmatched(mgmt))
	s.management = s.canonical(s.metrics.instrument(mgmt))
	return s
}

// Close stops the server's background work: evaluating and writing to
// watchers. Call it after the HTTP servers serving it have shut down.
func (s *Server) Close() {
	s.closing.Do(func() { close(s.stop) })
	s.stopped.Wait()
}

// DeviceHandler serves the device API, health and readiness only: what
// faces the internet when the management API listens elsewhere.
func (s *Server) DeviceHandler() http.Handler { return s.device }

// ManagementHandler serves the management API, metrics, health and
// readiness.
func (s *Server) ManagementHandler() http.Handler { return s.management }

// ServeHTTP serves both APIs, for a deployment on one address.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/client/") {
		s.device.ServeHTTP(w, r)
		return
	}
	s.management.ServeHTTP(w, r)
}

// WrapListener makes the answers net/http gives by itself, before any
// handler (headers too large, malformed requests), problem documents like
// every other error. Serve the Server's handlers on what it returns, with
// http.Server.MaxHeaderBytes set to MaxHeaderBytes.
func WrapListener(ln net.Listener) net.Listener {
	return newProblemListener(ln, MaxHeaderBytes, renderProblem)
}

func apiConfig(version string) huma.Config {
	if version == "" {
		version = "dev"
	}
	cfg := huma.DefaultConfig("mds management API", version)
	cfg.Info.Description = "Manage apps, packages, release tasks and tokens of a Mobile Delivery Service. " +
		"Every call needs `Authorization: Bearer <token>`; a token holds a role (viewer, releaser, admin) per app. " +
		"Errors are RFC 9457 problem documents whose `code` names the kind of error."
	cfg.OpenAPIPath = "/api/v1/openapi"
	// The interactive docs page loads scripts from a CDN; a self-hosted
	// service should not, so only the JSON/YAML documents are served.
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	// No $schema links in bodies: clients get exactly the fields documented.
	cfg.CreateHooks = nil
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An mds token, created with `mds token create`."},
	}
	return cfg
}

// canonical answers a path that is not in its clean form (//, /./, /../)
// with a problem naming the clean one, where ServeMux would answer with a
// redirect: a redirected POST loses its body, and a redirect's HTML is no
// problem document.
func (s *Server) canonical(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if clean := cleanPath(p); clean != p {
			writeProblemStatus(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %q is not a clean path; did you mean %s?", p, clean))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	clean := path.Clean(p)
	if p[0] != '/' {
		clean = "/" + clean
	}
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// unmatched answers requests no route takes with a problem document, as
// every other error is: 405 with Allow when the path exists for another
// method, 404 otherwise. It runs only for such requests.
func (s *Server) unmatched(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := *r // mux.Handler reads only the method, host and path
			probe.Method = m
			if _, pattern := mux.Handler(&probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
				if m == http.MethodGet {
					allow = append(allow, http.MethodHead) // GET routes answer HEAD
				}
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeProblemStatus(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not served here; use %s", r.Method, strings.Join(allow, " or ")))
			return
		}
		writeProblemStatus(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s; the management API is described at /api/v1/openapi.json", r.URL.Path))
	}
}

func (s *Server) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz reports ready once checks can be answered and the store answers.
// A node whose store is down keeps answering checks from its snapshot, but
// should not take management traffic, hence not ready.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.watchers.Draining() {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "this node is shutting down"))
		return
	}
	if s.live.Current() == nil {
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "no release snapshot loaded yet"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("store ping failed", "err", err)
		s.writeProblem(w, r, mds.Errorf(mds.EUNAVAILABLE, "store unreachable"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
}

// refresh makes a write visible to the next check on this node. It outlives
// the request: a client that hangs up after the commit must not delay its
// effect. Failure is logged, not returned: the write is committed, and
// polling will catch up.
func (s *Server) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.live.Refresh(ctx); err != nil {
		s.log.Error("snapshot refresh after write failed; polling will retry", "err", err)
	}
}
