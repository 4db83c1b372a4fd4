package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/atomicfile"
)

// Remote configuration on the device: typed key/values the app reads
// with a default of its own (Bool, Int, Float, String, JSON). An answer
// names an index by its SHA-256 and size, which the signature covers, and
// the index names each namespace's document so: whatever is fetched and
// hashed is as trusted as the answer. UpdateConfig fetches the index when
// its digest moved, then the documents whose digest moved, and keeps the
// whole configuration in config.json, beside the state, which it replaces
// atomically once every document is in: a failure, or a crash, leaves the
// last good configuration, which the getters read, so an app starts with
// it offline and before any check.
//
// The configuration is not in state.json: it can be large, and the state
// is written at every answer accepted. Nor does it protect the device as
// the state does (a configuration is whatever the server signs now), so a
// config.json that cannot be read is the defaults until the next update,
// not an error.

// configFile is the configuration a device holds, in its state directory.
const configFile = "config.json"

// configFormat is the revision of config.json this SDK writes. One it
// does not read is taken for no configuration, and replaced at the next
// update: the server has it all.
const configFormat = 1

// ConfigRef is an answer's config section: the index of the device's
// configuration, which names the document of each namespace.
type ConfigRef struct {
	SHA256 string `json:"sha256"` // of the index, lowercase hex
	Size   int64  `json:"size"`   // of the index
	URL    string `json:"url"`
}

// configIndex is the index a ConfigRef names.
type configIndex struct {
	Namespaces map[string]ConfigNamespace `json:"namespaces"`
}

// ConfigNamespace is one namespace of a configuration index: the document
// that holds the device's values of it, and what made them (the
// namespace's version, and the gray changes in force for the device).
type ConfigNamespace struct {
	Version int64   `json:"version"`
	Gray    []int64 `json:"gray"`
	SHA256  string  `json:"sha256"` // of the document, lowercase hex
	Size    int64   `json:"size"`   // of the document
	URL     string  `json:"url"`
}

// remote is the document n names, of at most max bytes.
func (n *ConfigNamespace) remote(ns string, max int64) remote {
	return remote{what: "configuration of namespace " + ns, URL: n.URL, SHA256: n.SHA256, Size: n.Size, Max: max}
}

// ConfigValues are configuration values by "namespace.key", each the
// canonical JSON of its type: a string, an integer, a number, true or
// false, or any JSON.
type ConfigValues map[string]json.RawMessage

// ErrConfigMoved: the index or a document the answer names is no longer
// served, as the configuration changed since the answer was made. Check
// again: the new answer names the new ones.
var ErrConfigMoved = errors.New("the configuration changed since the answer: check again")

// heldConfig is config.json: the configuration the device holds, and
// the digest of the index it came from ("" for none). Once made it is
// never changed, so getters read it without a lock.
type heldConfig struct {
	Format int    `json:"format"`
	App    string `json:"app"`
	// Version is that of the answer it came from: an older answer, taken
	// late, does not replace it.
	Version    int64                     `json:"version"`
	Index      string                    `json:"index"`
	Namespaces map[string]*heldNamespace `json:"namespaces"`
}

// heldNamespace is a namespace as the device holds it: the digest of the
// document its values came from, and what made them.
type heldNamespace struct {
	Version int64                      `json:"version"`
	Gray    []int64                    `json:"gray"`
	SHA256  string                     `json:"sha256"`
	Values  map[string]json.RawMessage `json:"values"`
}

// values are n's values; none for no namespace.
func (n *heldNamespace) values() map[string]json.RawMessage {
	if n == nil {
		return nil
	}
	return n.Values
}

// configDocument is a namespace's document as the server serves it.
type configDocument struct {
	Namespace string                     `json:"namespace"`
	Version   int64                      `json:"version"`
	Gray      []int64                    `json:"gray"`
	Values    map[string]json.RawMessage `json:"values"`
}

// configStore is a Client's configuration: what it holds, loaded from
// config.json at first use, and who listens to its changes.
type configStore struct {
	load sync.Once
	held atomic.Pointer[heldConfig]
	// update serializes UpdateConfig, so that changes are made, and
	// queued for listeners, one after the other.
	update sync.Mutex
	// mu guards the listeners and the changes queued for them;
	// notifying is set while a goroutine delivers the queue.
	mu        sync.Mutex
	listeners []*configListener
	queue     [][]string
	notifying bool
}

type configListener struct {
	fn      func(changed []string)
	removed atomic.Bool
}

// configs returns the client's configuration, loaded.
func (c *Client) configs() *configStore {
	s := &c.config
	s.load.Do(func() { s.held.Store(c.loadConfig()) })
	return s
}

// loadConfig reads config.json; no configuration when there is none, or
// none this SDK can read for this app.
func (c *Client) loadConfig() *heldConfig {
	empty := &heldConfig{Format: configFormat, App: c.cfg.Device.AppKey, Namespaces: map[string]*heldNamespace{}}
	b, err := os.ReadFile(c.path(configFile))
	if err != nil {
		return empty
	}
	var h heldConfig
	if json.Unmarshal(b, &h) != nil || h.Format != configFormat || h.App != empty.App || h.Namespaces == nil {
		return empty
	}
	for name, n := range h.Namespaces {
		if n == nil {
			delete(h.Namespaces, name)
		}
	}
	return &h
}

// UpdateConfig makes the device's configuration the one answer a names:
// when the digest of its index differs from the one held, it fetches the
// index, then the document of each namespace whose digest differs from
// the one held, checks each file's size and SHA-256 against what named
// it, and only once all are in, replaces config.json; namespaces the
// index does not name are dropped (all of them for an answer whose config
// is null). It returns the names ("namespace.key", sorted) whose value was
// added, changed or removed, and tells the listeners (OnConfigChange) of
// them. An unchanged configuration fetches and writes nothing.
//
// A file that is not the one named is refused (ErrHashMismatch,
// ErrTooLong), and one no longer served is ErrConfigMoved: either way the
// configuration held stays as it was.
func (c *Client) UpdateConfig(ctx context.Context, a *Answer) ([]string, error) {
	s := c.configs()
	if err := c.followsConfig(a); err != nil {
		return nil, err
	}
	s.update.Lock()
	changed, err := c.updateConfig(ctx, s, a)
	s.update.Unlock()
	s.deliver()
	return changed, err
}

// followsConfig checks that a is an answer Check returned that still
// stands. The config section does not depend on what the device holds of
// other kinds, so applying a patch does not stale it.
func (c *Client) followsConfig(a *Answer) error {
	if a == nil || !a.verified {
		return refusal(ErrUntrustedAnswer, "only answers that Check returned are followed")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.st.Answer; s != nil && a.Version < s.Version {
		return refusal(ErrReplay, "the answer is version %d, and version %d was accepted since: check again", a.Version, s.Version)
	}
	if !a.Expires.After(c.now()) {
		return refusal(ErrExpired, "the answer expired at %s: check again", a.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// updateConfig is UpdateConfig under s.update.
func (c *Client) updateConfig(ctx context.Context, s *configStore, a *Answer) ([]string, error) {
	held := s.held.Load()
	if a.Version < held.Version {
		return nil, refusal(ErrReplay, "the answer is version %d, and the configuration held came from version %d: check again", a.Version, held.Version)
	}
	next, moved, err := c.nextConfig(ctx, held, a.Config)
	if err != nil || !moved {
		return nil, err
	}
	next.Version = a.Version
	changed := changes(held, next)
	if err := c.saveConfig(s, next); err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		s.mu.Lock()
		s.queue = append(s.queue, slices.Clone(changed)) // the caller's is its own
		s.mu.Unlock()
	}
	return changed, nil
}

// nextConfig is the configuration ref names, fetching its index and the
// documents of the namespaces whose digest moved from held's, unless the
// index did not move: then it reports that nothing did.
func (c *Client) nextConfig(ctx context.Context, held *heldConfig, ref *ConfigRef) (*heldConfig, bool, error) {
	next := &heldConfig{Format: configFormat, App: c.cfg.Device.AppKey, Namespaces: map[string]*heldNamespace{}}
	if ref == nil {
		return next, held.Index != "" || len(held.Namespaces) > 0, nil
	}
	if ref.SHA256 == held.Index {
		return held, false, nil
	}
	index, err := c.fetchIndex(ctx, ref)
	if err != nil {
		return nil, false, err
	}
	next.Index = ref.SHA256
	for _, name := range slices.Sorted(maps.Keys(index.Namespaces)) {
		e := index.Namespaces[name]
		if h := held.Namespaces[name]; h != nil && h.SHA256 == e.SHA256 {
			next.Namespaces[name] = h
			continue
		}
		n, err := c.fetchNamespace(ctx, name, &e)
		if err != nil {
			return nil, false, err
		}
		next.Namespaces[name] = n
	}
	return next, true, nil
}

// fetchIndex fetches the index ref names, and checks it is that index.
func (c *Client) fetchIndex(ctx context.Context, ref *ConfigRef) (*configIndex, error) {
	r := remote{what: "configuration index", URL: ref.URL, SHA256: ref.SHA256, Size: ref.Size, Max: c.maxPatch}
	if err := checkFile(r); err != nil {
		return nil, err
	}
	body, err := c.fetchDocument(ctx, r)
	if err != nil {
		return nil, err
	}
	var index configIndex
	if err := json.Unmarshal(body, &index); err != nil {
		return nil, refusal(ErrMalformedAnswer, "the %s is not one: %v", r.what, err)
	}
	return &index, nil
}

// fetchNamespace fetches the document e names for namespace ns, and
// checks it is that document before reading anything in it. The index
// named it by digest, so what it says of the document (its namespace,
// version and changes) must hold too.
func (c *Client) fetchNamespace(ctx context.Context, ns string, e *ConfigNamespace) (*heldNamespace, error) {
	if err := mds.ValidConfigNamespace(ns); err != nil {
		return nil, refusal(ErrMalformedAnswer, "the configuration index: %s", mds.ErrorMessage(err))
	}
	r := e.remote(ns, c.maxPatch)
	if err := checkFile(r); err != nil {
		return nil, err
	}
	body, err := c.fetchDocument(ctx, r)
	if err != nil {
		return nil, err
	}
	var doc configDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, refusal(ErrMalformedAnswer, "the %s is not a configuration document: %v", r.what, err)
	}
	if doc.Namespace != ns || doc.Version != e.Version || !slices.Equal(doc.Gray, e.Gray) || doc.Values == nil {
		return nil, refusal(ErrMalformedAnswer, "the %s is of namespace %q version %d with changes %v, the index says version %d with changes %v",
			r.what, doc.Namespace, doc.Version, doc.Gray, e.Version, e.Gray)
	}
	return &heldNamespace{Version: e.Version, Gray: e.Gray, SHA256: e.SHA256, Values: doc.Values}, nil
}

// fetchDocument downloads the small file r names into memory: no more
// than its size, and only if it hashes to its SHA-256.
func (c *Client) fetchDocument(ctx context.Context, r remote) ([]byte, error) {
	u, err := c.resolve(r.URL)
	if err != nil {
		return nil, refusal(ErrMalformedAnswer, "the %s url %q: %v", r.what, r.URL, err)
	}
	// A document is small, like an answer: one that takes longer than a
	// check is stuck.
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the mds server: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: the %s: %w", ErrConfigMoved, r.what, readProblem(resp, c.now()))
	case resp.StatusCode >= 400:
		return nil, readProblem(resp, c.now())
	case resp.StatusCode != http.StatusOK:
		return nil, refusal(ErrMalformedAnswer, "fetching the %s answered %d %s", r.what, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	// One byte more than may come tells a longer body from a whole one.
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.Size+1))
	switch sum := sha256.Sum256(b); {
	case err != nil:
		return nil, fmt.Errorf("reading the %s: %w", r.what, err)
	case int64(len(b)) > r.Size:
		return nil, refusal(ErrTooLong, "the server sent more than the %d bytes the %s is named with", r.Size, r.what)
	case int64(len(b)) != r.Size || hex.EncodeToString(sum[:]) != r.SHA256:
		return nil, refusal(ErrHashMismatch, "the %s is %d bytes hashing to %x, named as %d bytes hashing to %s", r.what, len(b), sum, r.Size, r.SHA256)
	}
	return b, nil
}

// changes are the names ("namespace.key", sorted) whose value differs
// between from and to, present in one only or with other bytes: values
// are canonical, so equal values are equal bytes.
func changes(from, to *heldConfig) []string {
	var out []string
	for _, ns := range slices.Sorted(maps.Keys(union(from.Namespaces, to.Namespaces))) {
		a, b := from.Namespaces[ns], to.Namespaces[ns]
		if a == b {
			continue // kept as it was
		}
		av, bv := a.values(), b.values()
		for _, k := range slices.Sorted(maps.Keys(union(av, bv))) {
			x, inA := av[k]
			y, inB := bv[k]
			if inA != inB || !bytes.Equal(x, y) {
				out = append(out, ns+"."+k)
			}
		}
	}
	return out
}

// union is the set of the keys of a and b.
func union[V any](a, b map[string]V) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// saveConfig makes next the configuration held: in config.json, then in
// memory. It writes under mu, as the state is written, so that nothing
// is written after Close.
func (c *Client) saveConfig(s *configStore, next *heldConfig) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Values are kept as the server made them, in canonical JSON, which
	// does not escape HTML: bytes then compare as values do.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(next); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	// What a write cut short by a crash left; none is running, as
	// writes are made under mu.
	if err := atomicfile.RemoveTemps(c.dir, configFile); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path(configFile), buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("sdk: saving the configuration: %w", err)
	}
	s.held.Store(next)
	return nil
}

// OnConfigChange calls fn with the names ("namespace.key", sorted) whose
// value changed, after each UpdateConfig that changed some, until remove
// is called. Listeners are called in the order they were added, for one
// change after the other, and with no lock held: fn may read the
// configuration, and even update it (that change is delivered after fn
// returns).
func (c *Client) OnConfigChange(fn func(changed []string)) (remove func()) {
	s := c.configs()
	l := &configListener{fn: fn}
	s.mu.Lock()
	// A new slice each time: deliver calls those of the slice it read.
	s.listeners = append(slices.Clip(s.listeners), l)
	s.mu.Unlock()
	return func() {
		l.removed.Store(true)
		s.mu.Lock()
		s.listeners = slices.DeleteFunc(slices.Clone(s.listeners), func(x *configListener) bool { return x == l })
		s.mu.Unlock()
	}
}

// deliver calls the listeners with the changes queued, in order, unless
// another goroutine is at it, which then delivers these too.
func (s *configStore) deliver() {
	s.mu.Lock()
	if s.notifying {
		s.mu.Unlock()
		return
	}
	s.notifying = true
	for len(s.queue) > 0 {
		changed, listeners := s.queue[0], s.listeners
		s.queue = s.queue[1:]
		s.mu.Unlock()
		for _, l := range listeners {
			if !l.removed.Load() {
				l.fn(slices.Clone(changed))
			}
		}
		s.mu.Lock()
	}
	s.notifying = false
	s.mu.Unlock()
}

// value is the value of key, "namespace.key", in the configuration held.
func (c *Client) value(key string) (json.RawMessage, bool) {
	ns, k, ok := strings.Cut(key, ".")
	if !ok {
		return nil, false
	}
	v, ok := c.configs().held.Load().Namespaces[ns].values()[k]
	return v, ok
}

// Bool returns the boolean value of key ("namespace.key"), or def when
// the device holds none, or one of another type.
func (c *Client) Bool(key string, def bool) bool {
	switch v, _ := c.value(key); string(v) {
	case "true":
		return true
	case "false":
		return false
	}
	return def
}

// Int returns the integer value of key ("namespace.key"), or def when
// the device holds none, or one that is not an integer within 64 bits.
func (c *Client) Int(key string, def int64) int64 {
	v, _ := c.value(key)
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return def
	}
	return n
}

// Float returns the number value of key ("namespace.key"), an integer's
// too, or def when the device holds none, or one that is not a number.
func (c *Client) Float(key string, def float64) float64 {
	v, _ := c.value(key)
	// Values are JSON: one that starts so is a number, and a number
	// ParseFloat reads as JSON does.
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return def
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return def
	}
	return f
}

// String returns the string value of key ("namespace.key"), or def when
// the device holds none, or one of another type.
func (c *Client) String(key string, def string) string {
	v, _ := c.value(key)
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return def
	}
	return s
}

// JSON unmarshals the value of key ("namespace.key") into v, and reports
// whether it did: false when the device holds none, or one that does not
// unmarshal into v.
func (c *Client) JSON(key string, v any) bool {
	raw, ok := c.value(key)
	return ok && json.Unmarshal(raw, v) == nil
}

// ConfigValues returns every value of the configuration held.
func (c *Client) ConfigValues() ConfigValues {
	out := ConfigValues{}
	for ns, n := range c.configs().held.Load().Namespaces {
		for k, v := range n.Values {
			out[ns+"."+k] = bytes.Clone(v)
		}
	}
	return out
}

// ConfigSource is what made the values of a namespace the device holds:
// the namespace's version (0 when only gray changes name it), and the
// tasks of the gray changes in force for the device, oldest first.
type ConfigSource struct {
	Version int64   `json:"version"`
	Gray    []int64 `json:"gray"`
}

// ConfigSources returns the source of each namespace held, by name: what
// an app may report beside what it did with the values.
func (c *Client) ConfigSources() map[string]ConfigSource {
	out := map[string]ConfigSource{}
	for ns, n := range c.configs().held.Load().Namespaces {
		out[ns] = ConfigSource{Version: n.Version, Gray: slices.Clone(n.Gray)}
	}
	return out
}
