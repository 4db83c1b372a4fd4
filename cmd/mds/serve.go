package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/cli"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/localfs"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/postgres"
	"github.com/mds-dev/mds/signing"
	"github.com/mds-dev/mds/sqlite"
	"github.com/mds-dev/mds/sqlstore"
	"github.com/mds-dev/mds/watch"
)

// serveConfig is everything `mds serve` is configured with. Each field has a
// flag and an MDS_* environment variable; the flag wins.
type serveConfig struct {
	addr           string
	managementAddr string
	data           string
	databaseURL    string
	publicURL      string
	maxUpload      string
	blobMaxAge     string
	sampleBytes    string
	poll           string
	logLevel       string
	logFormat      string
	proxies        string
	answerKeys     string
	answerTTL      string
	maxWatchers    string
	watchSweep     string
	drainDelay     string
	drainSpread    string
	deltaWorkers   string
	deltaBases     string
	rotateAdmin    bool
}

func serveCmd() *cobra.Command {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the delivery service",
		Long: `Run the delivery service. With no configuration it keeps everything in ./mds-data
(a SQLite database and a blob directory) and listens on 127.0.0.1:8080.

The bootstrap admin token comes from MDS_ADMIN_TOKEN (environment only, never a
flag, so it does not show in process lists). When it is unset and the
deployment has no admin token yet, one is generated, stored hashed and printed
once. A different MDS_ADMIN_TOKEN than the one the admin token was made with is
refused, unless --rotate-admin-token says to replace it.

With --management-addr the management API and /metrics listen there and the
device API alone on --addr, so that only the device API need face the
internet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), c, os.Getenv("MDS_ADMIN_TOKEN"), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.addr, "addr", env("MDS_ADDR", "127.0.0.1:8080"), "listen address (MDS_ADDR); of the device API alone when --management-addr is set")
	f.StringVar(&c.managementAddr, "management-addr", env("MDS_MANAGEMENT_ADDR", ""), "listen address of the management API and /metrics, apart from the device API (MDS_MANAGEMENT_ADDR); default: both on --addr")
	f.StringVar(&c.data, "data", env("MDS_DATA", "mds-data"), "data directory for the SQLite file and blobs (MDS_DATA)")
	f.StringVar(&c.databaseURL, "database-url", env("MDS_DATABASE_URL", ""), "postgres://… for PostgreSQL, sqlite:PATH for SQLite; default sqlite:<data>/mds.db (MDS_DATABASE_URL)")
	f.StringVar(&c.publicURL, "public-url", env("MDS_PUBLIC_URL", ""), "URL devices reach this server at, for download links; default http://<addr> (MDS_PUBLIC_URL)")
	f.StringVar(&c.maxUpload, "max-upload", env("MDS_MAX_UPLOAD", "8GiB"), "largest package upload, e.g. 512MiB, 8GiB (MDS_MAX_UPLOAD)")
	f.StringVar(&c.blobMaxAge, "blob-max-age", env("MDS_BLOB_MAX_AGE", "1h"), "how long devices and CDNs may keep a downloaded file before asking again; a withdrawn file reaches caches within it (MDS_BLOB_MAX_AGE)")
	f.StringVar(&c.sampleBytes, "preview-sample", env("MDS_PREVIEW_SAMPLE", "64MiB"), "memory for the sample of recently checking devices that previews count, shared by all apps, e.g. 64MiB (MDS_PREVIEW_SAMPLE)")
	f.StringVar(&c.poll, "poll-interval", env("MDS_POLL_INTERVAL", "2s"), "how often to look for changes made by other nodes, e.g. 2s (MDS_POLL_INTERVAL)")
	f.StringVar(&c.logLevel, "log-level", env("MDS_LOG_LEVEL", "info"), "debug, info, warn or error (MDS_LOG_LEVEL)")
	f.StringVar(&c.logFormat, "log-format", env("MDS_LOG_FORMAT", "text"), "text or json (MDS_LOG_FORMAT)")
	f.StringVar(&c.proxies, "trusted-proxies", env("MDS_TRUSTED_PROXIES", ""), "comma-separated networks of load balancers whose X-Forwarded-For is believed, e.g. 10.0.0.0/8 (MDS_TRUSTED_PROXIES)")
	f.StringVar(&c.answerKeys, "answer-keys", env("MDS_ANSWER_KEYS", ""), "comma-separated PEM files of the deployment's private keys, which sign every check answer; "+
		"all sign, so devices trusting an old or a new key both verify during a rotation; default <data>/answer-key.pem, created on first start (MDS_ANSWER_KEYS)")
	f.StringVar(&c.answerTTL, "answer-ttl", env("MDS_ANSWER_TTL", "24h"), "how long a signed answer stays valid, which bounds how long a device can be frozen on an old one; re-signed every half of it (MDS_ANSWER_TTL)")
	f.StringVar(&c.maxWatchers, "max-watchers", env("MDS_MAX_WATCHERS", "auto"), "devices that may watch this node at once; auto: what the process's open-file limit leaves room for, at most 100000 (MDS_MAX_WATCHERS)")
	f.StringVar(&c.watchSweep, "watch-sweep", env("MDS_WATCH_SWEEP", "10s"), "how often every watcher is evaluated, for what time alone changes (ramp steps, windows) (MDS_WATCH_SWEEP)")
	f.StringVar(&c.drainDelay, "drain-delay", env("MDS_DRAIN_DELAY", "0s"), "on SIGTERM, how long readyz reports not ready before watchers are told to reconnect; set it to what your load balancer takes to notice (MDS_DRAIN_DELAY)")
	f.StringVar(&c.drainSpread, "drain-spread", env("MDS_DRAIN_SPREAD", "10s"), "on SIGTERM, the span over which watchers are told to reconnect, each at a random moment, so they spread over the other nodes (MDS_DRAIN_SPREAD)")
	f.StringVar(&c.deltaWorkers, "delta-workers", env("MDS_DELTA_WORKERS", "1"), "offline package deltas this node builds at once, each holding two versions in memory (about 8 bytes per byte of them at peak); 0 builds none here (MDS_DELTA_WORKERS)")
	f.StringVar(&c.deltaBases, "delta-bases", env("MDS_DELTA_BASES", "5"), "how many of the versions released before a new offline package version get a delta to it, 0 to 16 (MDS_DELTA_BASES)")
	f.BoolVar(&c.rotateAdmin, "rotate-admin-token", false, "replace the admin token's secret by MDS_ADMIN_TOKEN; the old one stops working")
	return cmd
}

var env = cli.Env

// maxDefaultWatchers bounds the watchers a node takes by default: about
// 10 KB each, so 1 GB of the node's memory.
const maxDefaultWatchers = 100_000

func serve(ctx context.Context, c serveConfig, adminSecret string, stderr io.Writer) error {
	log, err := newLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return err
	}
	maxUpload, err := parseSize(c.maxUpload)
	if err != nil {
		return fmt.Errorf("--max-upload: %w", err)
	}
	sampleBytes, err := parseSize(c.sampleBytes)
	if err != nil {
		return fmt.Errorf("--preview-sample: %w", err)
	}
	poll, err := time.ParseDuration(c.poll)
	if err != nil || poll < 10*time.Millisecond {
		return fmt.Errorf("--poll-interval %q: give a duration of at least 10ms, like 2s", c.poll)
	}
	blobMaxAge, err := time.ParseDuration(c.blobMaxAge)
	if err != nil || blobMaxAge < time.Second {
		return fmt.Errorf("--blob-max-age %q: give a duration of at least 1s, like 1h", c.blobMaxAge)
	}
	proxies, err := parsePrefixes(c.proxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	answerTTL, err := time.ParseDuration(c.answerTTL)
	if err != nil || answerTTL < 2*time.Minute {
		return fmt.Errorf("--answer-ttl %q: give a duration of at least 2m, like 24h", c.answerTTL)
	}
	watchSweep, err := time.ParseDuration(c.watchSweep)
	if err != nil || watchSweep < 100*time.Millisecond || watchSweep > answerTTL/4 {
		// Watchers get answers signed anew within the first half of each
		// signing period (half the answer TTL), found by a sweep.
		return fmt.Errorf("--watch-sweep %q: give a duration from 100ms to a quarter of --answer-ttl, like 10s", c.watchSweep)
	}
	drainDelay, err := time.ParseDuration(c.drainDelay)
	if err != nil || drainDelay < 0 {
		return fmt.Errorf("--drain-delay %q: give a duration, like 5s", c.drainDelay)
	}
	drainSpread, err := time.ParseDuration(c.drainSpread)
	if err != nil || drainSpread < 0 {
		return fmt.Errorf("--drain-spread %q: give a duration, like 10s", c.drainSpread)
	}
	maxWatchers := watcherRoom()
	if c.maxWatchers != "auto" {
		if maxWatchers, err = strconv.Atoi(c.maxWatchers); err != nil || maxWatchers <= 0 {
			return fmt.Errorf("--max-watchers %q: give a positive number, or auto for what the open-file limit leaves room for", c.maxWatchers)
		}
	}
	deltaWorkers, err := strconv.Atoi(c.deltaWorkers)
	if err != nil || deltaWorkers < 0 || deltaWorkers > 64 {
		return fmt.Errorf("--delta-workers %q: give a number from 0 to 64", c.deltaWorkers)
	}
	deltaBases, err := strconv.Atoi(c.deltaBases)
	if err != nil || deltaBases < 0 || deltaBases > mds.MaxDeltaBases {
		return fmt.Errorf("--delta-bases %q: give a number from 0 to %d", c.deltaBases, mds.MaxDeltaBases)
	}
	if err := os.MkdirAll(c.data, 0o750); err != nil {
		return err
	}
	answerKeys, err := loadAnswerKeys(c.answerKeys, c.data, log)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, c.databaseURL, c.data)
	if err != nil {
		return err
	}
	defer store.Close()
	// One clock for the whole node: timestamps, token expiry, windows.
	now := time.Now
	store.Now = now
	store.SetDeltaBases(deltaBases)
	blobs, err := localfs.Open(c.data)
	if err != nil {
		return err
	}
	defer blobs.Close()
	if err := bootstrapAdmin(ctx, store, bootstrap{secret: adminSecret, rotate: c.rotateAdmin, now: now, stderr: stderr, log: log}); err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var mgmtLn net.Listener
	if c.managementAddr != "" {
		if mgmtLn, err = net.Listen("tcp", c.managementAddr); err != nil {
			return err
		}
		defer mgmtLn.Close()
	}
	publicURL := strings.TrimSuffix(c.publicURL, "/")
	if publicURL == "" {
		publicURL = defaultPublicURL(ln.Addr().(*net.TCPAddr))
	}
	live := delivery.NewLive(store)
	live.OnProblem = func(err error) { log.Error("task left out of the snapshot", "err", err) }
	if err := live.Refresh(ctx); err != nil {
		return fmt.Errorf("load release snapshot: %w", err)
	}
	var builder *offline.Builder
	if deltaWorkers > 0 {
		builder = &offline.Builder{Store: store, Blobs: blobs, Log: log, Workers: deltaWorkers, Refresh: live.Refresh, Now: now}
	}
	srv := httpapi.New(httpapi.Config{Store: store, Blobs: blobs, Live: live, PublicURL: publicURL, Log: log, Now: now,
		MaxUpload: maxUpload, SpoolDir: blobs.TempDir(), BlobMaxAge: blobMaxAge, TrustedProxies: proxies, Version: buildVersion,
		AnswerKeys: answerKeys, AnswerTTL: answerTTL, Watch: watch.Config{Max: maxWatchers, Sweep: watchSweep},
		Recent: delivery.NewRecent(int(sampleBytes), delivery.DefaultSamplePerApp, delivery.DefaultSampleEvery), Deltas: builder})
	defer srv.Close()
	if builder != nil {
		building := make(chan struct{})
		go func() { defer close(building); builder.Run(ctx) }()
		// A shutdown waits for the builds under way (seconds each); one it
		// cut short hands its delta back, for another node or the next
		// start.
		defer func() { <-building }()
	}
	refreshFailed := func(err error) { log.Error("snapshot refresh failed; serving the previous one", "err", err) }
	go live.Run(ctx, poll, refreshFailed)
	if storeKind(c.databaseURL) == "postgres" {
		// Hear of other nodes' writes within milliseconds; polling stays as
		// the safety net for a lost connection or message.
		go postgres.Listen(ctx, c.databaseURL, func(change mds.Change) {
			if err := live.Heard(ctx, change); err != nil && ctx.Err() == nil {
				refreshFailed(err)
			}
		}, func(err error) { log.Warn("change notifications interrupted; relying on polling", "err", err) })
	}

	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    httpapi.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	servers := []*http.Server{newServer(srv)}
	listeners := []net.Listener{ln}
	if mgmtLn != nil {
		servers = []*http.Server{newServer(srv.DeviceHandler()), newServer(srv.ManagementHandler())}
		listeners = append(listeners, mgmtLn)
	}
	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(httpapi.WrapListener(listeners[i])) }()
	}
	if mgmtLn != nil {
		log.Info("listening", "addr", ln.Addr().String(), "management_addr", mgmtLn.Addr().String(), "public_url", publicURL,
			"store", storeKind(c.databaseURL), "data", c.data)
	} else {
		log.Info("listening", "addr", ln.Addr().String(), "public_url", publicURL, "store", storeKind(c.databaseURL), "data", c.data)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// readyz fails first, so load balancers stop sending; then every
	// watcher is told to reconnect, spread over the drain spread, to the
	// other nodes; then the HTTP servers finish what they are serving.
	log.Info("shutting down", "watchers", srv.Watchers())
	srv.Drain(drainDelay, drainSpread)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// openStore picks the store from the database URL's scheme.
func openStore(ctx context.Context, url, data string) (*sqlstore.Store, error) {
	switch {
	case url == "":
		return sqlite.Open(ctx, filepath.Join(data, "mds.db"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return postgres.Open(ctx, url)
	case strings.HasPrefix(url, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//"))
	}
	return nil, fmt.Errorf("database URL must start with postgres://, postgresql:// or sqlite:PATH")
}

func storeKind(url string) string {
	if strings.HasPrefix(url, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// defaultPublicURL derives a URL from the listen address; a wildcard host
// becomes loopback, which only suits a trial run, hence MDS_PUBLIC_URL.
func defaultPublicURL(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// minAdminSecret is the shortest MDS_ADMIN_TOKEN accepted: tokens are
// stored as plain SHA-256 hashes, which is only safe for long secrets.
const minAdminSecret = 32

// bootstrapAdmin makes sure the deployment can be administered. With a
// secret from MDS_ADMIN_TOKEN, the token named "admin" is created with it;
// an existing admin token with another secret is re-keyed only when rotate
// says so, and the rotation is logged, so that a mistyped or stale
// variable cannot silently take the deployment over. Without a secret, one
// is generated only while no admin token works, and printed this once;
// only its hash is kept.
func bootstrapAdmin(ctx context.Context, store mds.Store, b bootstrap) error {
	const name = "admin"
	secret, rotate, now := b.secret, b.rotate, b.now
	if now == nil {
		now = time.Now
	}
	if secret != "" && len(secret) < minAdminSecret {
		return fmt.Errorf("MDS_ADMIN_TOKEN is %d characters; use at least %d random ones (openssl rand -hex 24)", len(secret), minAdminSecret)
	}
	if rotate && secret == "" {
		return fmt.Errorf("--rotate-admin-token needs the new secret in MDS_ADMIN_TOKEN")
	}
	if secret != "" {
		t, err := store.FindTokenByName(ctx, name)
		switch {
		case err == nil && !t.Admin:
			return fmt.Errorf("a token named %q exists without the admin flag; revoke it or unset MDS_ADMIN_TOKEN", name)
		case err == nil && t.Hash == mds.HashToken(secret) && t.ExpiresAt == nil:
			return nil
		case err == nil && !rotate:
			return fmt.Errorf("MDS_ADMIN_TOKEN is not the secret of the admin token this deployment has; " +
				"to replace that secret, start once with --rotate-admin-token (the old secret stops working), or unset MDS_ADMIN_TOKEN")
		case err == nil:
			if err := store.RekeyToken(ctx, t.ID, mds.HashToken(secret)); err != nil {
				return err
			}
			if b.log != nil {
				b.log.Warn("admin token rotated: its secret is now MDS_ADMIN_TOKEN, and the old secret no longer works", "token", name)
			}
			return nil
		case mds.ErrorCode(err) != mds.ENOTFOUND:
			return err
		}
	} else if ok, err := hasAdmin(ctx, store, now); err != nil || ok {
		return err
	}
	generated := secret == ""
	if generated {
		secret = mds.NewTokenSecret()
	}
	err := store.CreateToken(ctx, &mds.Token{Name: name, Admin: true, Hash: mds.HashToken(secret), CreatedBy: "mds serve"})
	if mds.ErrorCode(err) == mds.ECONFLICT {
		// Another node starting at the same moment may have made it; if
		// not, the name is taken by a lesser token and nobody is admin.
		if ok, err := hasAdmin(ctx, store, now); err != nil || ok {
			return err
		}
		return fmt.Errorf("no admin token exists and the name %q is taken by a token without the admin flag; revoke it", name)
	}
	if err != nil {
		return err
	}
	if generated {
		// Outside the log format: a secret does not belong in collected logs.
		fmt.Fprintf(b.stderr, "\nmds: generated the admin token. It is shown this once and stored only as a hash:\n\n    export MDS_TOKEN=%s\n\n", secret)
	}
	return nil
}

// bootstrap is how bootstrapAdmin runs.
type bootstrap struct {
	secret string           // MDS_ADMIN_TOKEN, or "" to generate one if need be
	rotate bool             // replace an admin token's other secret by secret
	now    func() time.Time // the node's clock, for token expiry
	stderr io.Writer        // where a generated secret is shown, once
	log    *slog.Logger     // hears of rotations
}

// hasAdmin reports whether an admin token that still works exists.
func hasAdmin(ctx context.Context, store mds.Store, now func() time.Time) (bool, error) {
	p := mds.Page{Limit: mds.MaxPageLimit}
	for {
		tokens, err := store.ListTokens(ctx, p)
		if err != nil {
			return false, err
		}
		for _, t := range tokens {
			if t.Admin && !t.Expired(now()) {
				return true, nil
			}
		}
		if len(tokens) < p.Limit {
			return false, nil
		}
		p.After = tokens[len(tokens)-1].Name
	}
}

// parsePrefixes reads comma-separated CIDR blocks or single addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network like 10.0.0.0/8 or an address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseSize reads a byte count such as 1048576, 512MiB, 8GiB or 2GB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB or 8GiB", s)
	}
	return n * mult, nil
}

// loadAnswerKeys reads the deployment's answer signing keys: the files
// configured, or the key in the data directory, created on first start.
// The data directory is where every node of a deployment already reads
// the blobs from, so nodes sharing it share the key without further
// setup; a deployment whose nodes do not share a directory, or that keeps
// keys in a secret store, gives the files instead.
func loadAnswerKeys(files, data string, log *slog.Logger) ([]*signing.PrivateKey, error) {
	if files == "" {
		path := filepath.Join(data, "answer-key.pem")
		k, created, err := signing.LoadOrCreate(path, signing.ECDSAP256)
		if err != nil {
			return nil, fmt.Errorf("answer signing key: %w", err)
		}
		if created {
			log.Info("created the deployment's answer signing key; give app builds its public key (mds keys server-public)", "path", path, "key", k.Public().ID())
		}
		return []*signing.PrivateKey{k}, nil
	}
	var keys []*signing.PrivateKey
	for _, path := range strings.Split(files, ",") {
		b, err := os.ReadFile(strings.TrimSpace(path))
		if err != nil {
			return nil, fmt.Errorf("--answer-keys: %w", err)
		}
		k, err := signing.ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("--answer-keys %s: %w", path, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
