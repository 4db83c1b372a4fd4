// Package sdk is the device side of mds, in Go: what an app on a phone
// does to learn of upgrades and to run its team's hotpatches, for programs
// that act as devices (tests, the mds device command) and as the reference
// the Kotlin and Swift SDKs follow rule for rule.
//
// A device trusts two sets of keys, both built into the app: the
// deployment's server keys, which sign every check answer, and the app
// team's keys, which sign every hotpatch. The server decides what a device
// should run; the team's signature decides what it may run. So a network
// attacker can change nothing, and even a compromised server can only
// choose among patches the team signed, never older answers than the
// device already saw (ErrReplay), never a frozen one (ErrExpired).
//
// Every answer is also bound to the device state it was computed for
// (platform, app version, build, running patch), so that an answer
// fetched for one state cannot be served to a device in another
// (ErrNotForDevice), and an apply never goes below the running patch's
// version (ErrDowngrade): only a rollback goes back.
//
// All state lives in one directory the app gives Open, which locks it
// until Close: state.json, the extracted patches, and downloads in
// progress. Every change is written so that a crash or power loss at any
// instant leaves the previous patch usable: state.json is replaced
// atomically and only ever names complete, synced patch directories.
//
// A launch goes:
//
//	c, err := sdk.Open(dir, cfg)
//	defer c.Close()
//	st, err := c.Start()      // once per launch: run st.Current.Dir, if any
//	... when the app is up and healthy: c.MarkHealthy()
//	a, err := c.Check(ctx)    // now and then
//	res, err := c.Apply(ctx, a)
//
// A patch Apply installs runs from the next launch, and until then the
// app runs, and checks report, the patch it started with
// (Status.Running). It is pending until MarkHealthy after a launch ran
// it: if the app launches twice without confirming it (it crashed, or
// hung and was killed), Start reverts to the patch before and never
// applies that one again. A patch is for the installed versions its
// manifest targets: after an app upgrade to another, it is dropped.
package sdk

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/offline"
	"github.com/mds-dev/mds/signing"
)

// Config is what an app build knows: its server, what the device says
// about itself, and the keys it trusts.
type Config struct {
	// Server is the base URL of the device API, e.g.
	// https://mds.example.com; the check is POST {Server}/client/v1/check.
	Server string
	// Device is the device context every check sends. AppKey, Platform,
	// AppVersion and DeviceID are required. Hotpatch and DeviceTime are
	// filled by the SDK at each check, from its state and from Now.
	Device mds.Device
	// ServerKeys are the deployment keys whose signatures make an answer
	// trusted; at least one. During a server key rotation a build trusts
	// both the old and the new key.
	ServerKeys []*signing.PublicKey
	// TeamKeys are the app team's keys whose signatures make a hotpatch
	// runnable. With none, every hotpatch is refused (ErrUnknownTeamKey).
	TeamKeys []*signing.PublicKey
	// HTTPClient makes every request; nil for one with timeouts on
	// connecting and on waiting for answers, and none on whole transfers,
	// which Check and Download bound themselves.
	HTTPClient *http.Client
	// Now is the device's clock, for expiry and for device_time; nil for
	// time.Now.
	Now func() time.Time
	// MaxPatchSize caps the bytes of one download, whatever an answer
	// says: a hotpatch file, an offline package, a delta; 0 for
	// DefaultMaxPatchSize.
	MaxPatchSize int64
}

// DefaultMaxPatchSize is the largest hotpatch file downloaded when
// Config.MaxPatchSize is 0.
const DefaultMaxPatchSize = 512 << 20

// Timeouts of the SDK's own HTTP handling.
const (
	// checkTimeout bounds one check from request to the answer's last
	// byte: the body is small, so a check that takes longer is stuck.
	checkTimeout = time.Minute
	// stallTimeout bounds how long a download may go without receiving a
	// byte before it is abandoned (and later resumed): a mobile network
	// often stalls without closing the connection.
	stallTimeout = time.Minute
)

// Client is one device's view of mds, over one state directory. Its
// methods are safe for concurrent use. One Client at a time may use a
// directory (two would overwrite each other's state): Open locks it, and
// Close gives it up.
type Client struct {
	dir        string
	cfg        Config
	server     *url.URL
	serverKeys map[string]*signing.PublicKey // by key ID
	teamKeys   map[string]*signing.PublicKey
	http       *http.Client
	now        func() time.Time
	maxPatch   int64

	// install serializes Download and Apply, the long operations that
	// write into downloads/ and patches/; they do not hold mu while they
	// transfer or extract, so Status and Check stay responsive.
	install sync.Mutex
	// mu guards st and every write of state.json: a change is applied to
	// st and written while mu is held, so the file always holds st.
	mu sync.Mutex
	st state
	// extracting is the name, under patches/, of the temporary directory
	// an Apply is extracting into, which pruning must leave alone; "" for
	// none. Guarded by mu.
	extracting string
	// lock holds the directory's lock (lockFile) until Close; closed is
	// set by Close, after which nothing is committed. Guarded by mu.
	lock   *os.File
	closed bool
	// manifests are the parsed manifests of installed offline packages,
	// by directory, for Resolve. Guarded by mu.
	manifests map[string]*offline.Manifest
	// config is the remote configuration (config.go), kept in a file of
	// its own, apart from st: getters read it without taking mu.
	config configStore
}

// Open opens the state directory dir, creating it if needed, with the
// build's configuration, and locks it: a second Open of the directory, by
// this process or another, fails until Close. It loads the state, drops
// the patches that do not patch the configured app version and build (the
// app was upgraded under them: they are never run nor reported again),
// and removes what an interrupted apply left (temporary patch
// directories, directories of patches the state no longer names); partial
// downloads stay, to be resumed.
func Open(dir string, cfg Config) (*Client, error) {
	c := &Client{cfg: cfg, now: cfg.Now, http: cfg.HTTPClient, maxPatch: cfg.MaxPatchSize}
	if err := c.configure(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c.dir = abs
	for _, d := range []string{c.dir, c.path(patchesDir), c.path(downloadsDir), c.path(offlineRoot)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sdk: cannot create the state directory: %w", err)
		}
	}
	if c.lock, err = lockDir(c.dir); err != nil {
		return nil, err
	}
	st, err := loadState(c.dir)
	if err == nil {
		c.st = st
		err = c.recover()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close gives up the state directory, for another Open to take. A state
// change asked after Close fails; Status still answers. Close does not
// wait for a Download or Apply in progress, which then fails rather than
// commit. Closing twice is harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.lock == nil {
		return nil
	}
	err := c.lock.Close() // closing the descriptor releases the lock
	c.lock = nil
	return err
}

// configure checks the configuration and fills its defaults.
func (c *Client) configure() error {
	u, err := url.Parse(strings.TrimSuffix(c.cfg.Server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("sdk: server %q: give the base URL of the device API, like https://mds.example.com", c.cfg.Server)
	}
	c.server = u
	// Validate normalises the network name in what it checks, which is
	// then what every check sends.
	d := c.cfg.Device
	d.Hotpatch, d.DeviceTime, d.Offline = nil, nil, nil
	if err := d.Validate(); err != nil {
		return fmt.Errorf("sdk: device: %s", mds.ErrorMessage(err))
	}
	c.cfg.Device = d
	if len(c.cfg.ServerKeys) == 0 {
		return errors.New("sdk: no server keys: an answer is trusted only when signed by a deployment key the build embeds")
	}
	c.serverKeys = keyMap(c.cfg.ServerKeys)
	c.teamKeys = keyMap(c.cfg.TeamKeys)
	if c.now == nil {
		c.now = time.Now
	}
	if c.maxPatch <= 0 {
		c.maxPatch = DefaultMaxPatchSize
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	return nil
}

func keyMap(keys []*signing.PublicKey) map[string]*signing.PublicKey {
	m := make(map[string]*signing.PublicKey, len(keys))
	for _, k := range keys {
		if k != nil {
			m[k.ID()] = k
		}
	}
	return m
}

// defaultHTTPClient bounds each step that can hang (connecting, the TLS
// handshake, waiting for an answer's headers) but not whole transfers: a
// hotpatch on a slow network takes as long as it takes, and the SDK
// abandons a transfer that stalls instead.
func defaultHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
	}}
}

// path joins slash-separated parts under the state directory.
func (c *Client) path(rel string) string { return filepath.Join(c.dir, filepath.FromSlash(rel)) }

// resolve makes a URL of the answer absolute against the server's, so that
// a server behind a proxy may answer with relative links.
func (c *Client) resolve(ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	base := *c.server
	base.Path += "/"
	u = base.ResolveReference(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	return u.String(), nil
}
