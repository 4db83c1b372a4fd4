// Package httpapi serves mds over HTTP: the management API under /api/v1
// (described by OpenAPI, served by huma), the device endpoints under
// /client/v1 (hand-written, they are the hot path), health and metrics.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/release"
)

// Config is what a Server is built from.
type Config struct {
	Store mds.Store
	Blobs mds.BlobStore
	// Live holds the snapshot that checks are answered from; the server
	// refreshes it after each write it makes.
	Live *release.Live
	// Admissions remembers capped-window admissions; defaults to one over Store.
	Admissions *release.Admissions
	// Recent samples checking devices for audience previews; defaults to
	// 2,000 devices per app, one check in 8.
	Recent *release.Recent
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// when working out a device's address; none by default.
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// Now is the clock; tests replace it. Defaults to time.Now.
	Now func() time.Time
	// MaxUpload bounds one uploaded package, in bytes.
	MaxUpload int64
	// Version is reported in the OpenAPI document.
	Version string
	// BodyTimeout bounds how long a check body may take to arrive and how
	// long an upload may stall, so slow clients cannot pin connections and
	// temp files. Defaults to DefaultBodyTimeout.
	BodyTimeout time.Duration
}

// DefaultBodyTimeout is the body timeout when Config.BodyTimeout is zero.
const DefaultBodyTimeout = 30 * time.Second

// DefaultMaxUpload is the upload limit when Config.MaxUpload is zero.
const DefaultMaxUpload = 8 << 30

// maxCheckBody bounds a check request; a real one is well under 2 KiB.
const maxCheckBody = 64 << 10

// Server is the HTTP face of mds.
type Server struct {
	store     mds.Store
	blobs     mds.BlobStore
	live      *release.Live
	admit     *release.Admissions
	recent    *release.Recent
	proxies   []netip.Prefix
	log       *slog.Logger
	now       func() time.Time
	maxUpload int64
	bodyWait  time.Duration
	metrics   *metrics
	api       huma.API
	handler   http.Handler
}

// New builds a Server and its routes.
func New(cfg Config) *Server {
	s := &Server{
		store: cfg.Store, blobs: cfg.Blobs, live: cfg.Live, admit: cfg.Admissions, recent: cfg.Recent,
		proxies: cfg.TrustedProxies, log: cfg.Log, now: cfg.Now,
		maxUpload: cfg.MaxUpload, bodyWait: cfg.BodyTimeout, metrics: newMetrics(cfg.Live),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxUpload <= 0 {
		s.maxUpload = DefaultMaxUpload
	}
	if s.bodyWait <= 0 {
		s.bodyWait = DefaultBodyTimeout
	}
	if s.admit == nil {
		s.admit = release.NewAdmissions(s.store, func(err error) { s.log.Error("window admission failed", "err", err) })
	}
	if s.recent == nil {
		s.recent = release.NewRecent(2000, 8)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /client/v1/check", s.check)
	mux.HandleFunc("GET /client/v1/blobs/{sha256}", s.blob)
	mux.HandleFunc("GET /client/v1/manifests/{appkey}/{file}", s.manifest)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())

	s.api = humago.New(mux, apiConfig(cfg.Version))
	s.api.UseMiddleware(s.authenticate)
	s.registerManagement()
	s.registerGray()
	mux.HandleFunc("POST /api/v1/apps/{app}/blobs", s.upload)
	s.documentUpload()
	mux.HandleFunc("PUT /api/v1/apps/{app}/whitelists/{id}/entries", s.replaceWhitelist)
	s.documentWhitelistUpload()
	mux.Handle("/", s.unmatched(mux))

	s.handler = s.metrics.instrument(mux)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func apiConfig(version string) huma.Config {
	if version == "" {
		version = "dev"
	}
	cfg := huma.DefaultConfig("mds management API", version)
	cfg.Info.Description = "Manage apps, packages, release tasks and tokens of a Mobile Delivery Service. " +
		"Every call needs `Authorization: Bearer <token>`; a token holds a role (viewer, releaser, admin) per app."
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
			s.writeProblemStatus(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not served here; use %s", r.Method, strings.Join(allow, " or ")))
			return
		}
		s.writeProblemStatus(w, r, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s; the management API is described at /api/v1/openapi.json", r.URL.Path))
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// readyz reports ready once checks can be answered and the store answers.
// A node whose store is down keeps answering checks from its snapshot, but
// should not take management traffic, hence not ready.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
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
