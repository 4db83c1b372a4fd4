package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/sdk"
	"github.com/mds-dev/mds/signing"
)

// These tests run remote configuration end to end: written through the
// management API of a real server, fetched by SDK devices over HTTP,
// through the world's proxy.

// manage sends a management request about the app as the admin, and
// decodes its answer into out, if given.
func (w *world) manage(method, path string, in, out any) {
	w.t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		w.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(w.t.Context(), method, w.srv.URL+"/api/v1/apps/shop"+path, bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+httpapitest.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var p bytes.Buffer
		p.ReadFrom(resp.Body)
		w.t.Fatalf("%s %s: %s %s", method, path, resp.Status, p.String())
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			w.t.Fatal(err)
		}
	}
}

// typed is a key to set of type t, its value v as JSON.
func typed(t mds.ConfigType, v string) api.SetKey {
	return api.SetKey{Type: t, Value: json.RawMessage(v)}
}

// valued sets a key's value, keeping its type.
func valued(v string) api.SetKey { return api.SetKey{Value: json.RawMessage(v)} }

// setConfig edits namespace ns, a new version for every device.
func (w *world) setConfig(ns string, edit api.NamespaceEdit) {
	w.t.Helper()
	w.manage(http.MethodPost, "/config", api.EditConfig{Message: "test", Namespaces: map[string]api.NamespaceEdit{ns: edit}}, nil)
}

// configChange describes a gray change of ns setting set, to release.
func (w *world) configChange(ns string, set map[string]api.SetKey) *api.Package {
	w.t.Helper()
	var p api.Package
	w.manage(http.MethodPost, "/config/changes", api.ConfigChange{Namespace: ns, Set: set, Message: "gray"}, &p)
	if p.ID == 0 || p.Kind != mds.KindConfig {
		w.t.Fatalf("created %+v", p)
	}
	return &p
}

// deviceConfig is the SDK configuration of device id, app version 2.1.0,
// through the world's proxy.
func (w *world) deviceConfig(id string) sdk.Config {
	return sdk.Config{Server: w.proxy.front, Device: mds.Device{AppKey: w.app.Key, Platform: mds.Android, AppVersion: "2.1.0", DeviceID: id},
		ServerKeys: []*signing.PublicKey{w.srv.AnswerKey.Public()}, Now: w.srv.Now}
}

// open opens an SDK client over dir, closed when the test ends.
func open(t *testing.T, dir string, cfg sdk.Config) *sdk.Client {
	t.Helper()
	c, err := sdk.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// configure checks and updates the configuration, returning what changed.
func configure(t *testing.T, c *sdk.Client) []string {
	t.Helper()
	a, err := c.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	changed, err := c.UpdateConfig(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

func assertChanged(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("changed %q, want %q", got, want)
	}
}

// counter counts the requests a device makes for configuration indexes
// and documents (which name their namespace).
type counter struct {
	indexes, docs atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	switch {
	case !strings.HasPrefix(r.URL.Path, "/client/v1/config/"):
	case r.URL.Query().Has("ns"):
		c.docs.Add(1)
	default:
		c.indexes.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestConfigTypedValues: a device gets each type's value; a key it does
// not hold, or holds of another type, gives the default; a deleted key
// is reported changed and gone; listeners hear of each change in the
// order they were added, until removed.
func TestConfigTypedValues(t *testing.T) {
	w := newWorld(t)
	w.setConfig("checkout", api.NamespaceEdit{Set: map[string]api.SetKey{
		"new_flow": typed(mds.ConfigBoolean, "true"),
		"limit":    typed(mds.ConfigInteger, "42"),
		"ratio":    typed(mds.ConfigFloat, "0.25"),
		"title":    typed(mds.ConfigString, `"Pay <now> & go"`),
		"layout":   typed(mds.ConfigJSON, `{"cols": 2, "tags": ["a", "b"]}`),
	}})
	w.setConfig("search", api.NamespaceEdit{Set: map[string]api.SetKey{"engine.v2": typed(mds.ConfigString, `"bm25"`)}})
	dev := w.device("d", "2.1.0", "")
	if dev.Bool("checkout.new_flow", false) || dev.Int("checkout.limit", -1) != -1 {
		t.Fatal("a device that never checked holds values")
	}
	var heard []string
	var mu sync.Mutex
	listen := func(name string) func() {
		return dev.OnConfigChange(func(changed []string) {
			mu.Lock()
			heard = append(heard, name+" "+strings.Join(changed, ","))
			mu.Unlock()
		})
	}
	removeFirst := listen("first")
	listen("second")

	assertChanged(t, configure(t, dev), "checkout.layout", "checkout.limit", "checkout.new_flow", "checkout.ratio", "checkout.title", "search.engine.v2")
	if !dev.Bool("checkout.new_flow", false) {
		t.Error("Bool: false")
	}
	if got := dev.Int("checkout.limit", 0); got != 42 {
		t.Errorf("Int: %d", got)
	}
	if got := dev.Float("checkout.ratio", 0); got != 0.25 {
		t.Errorf("Float: %v", got)
	}
	if got := dev.Float("checkout.limit", 0); got != 42 {
		t.Errorf("Float of an integer: %v", got)
	}
	if got := dev.String("checkout.title", ""); got != "Pay <now> & go" {
		t.Errorf("String: %q", got)
	}
	if got := dev.String("search.engine.v2", ""); got != "bm25" {
		t.Errorf("String of a key with a dot: %q", got)
	}
	var layout struct {
		Cols int      `json:"cols"`
		Tags []string `json:"tags"`
	}
	if !dev.JSON("checkout.layout", &layout) || layout.Cols != 2 || !slices.Equal(layout.Tags, []string{"a", "b"}) {
		t.Errorf("JSON: %+v", layout)
	}
	// Defaults: absent keys, namespaces and names, and other types.
	for name, got := range map[string]bool{
		"absent key":             dev.Bool("checkout.absent", true) && dev.Int("checkout.absent", 7) == 7 && dev.String("checkout.absent", "d") == "d",
		"absent namespace":       dev.Bool("other.new_flow", true) && dev.Float("other.ratio", 1.5) == 1.5,
		"a name without a dot":   dev.Bool("new_flow", true) && dev.Int("checkout", 7) == 7,
		"an integer as boolean":  dev.Bool("checkout.limit", true),
		"a string as integer":    dev.Int("checkout.title", 7) == 7,
		"a float as integer":     dev.Int("checkout.ratio", 7) == 7,
		"an integer as string":   dev.String("checkout.limit", "d") == "d",
		"a boolean as float":     dev.Float("checkout.new_flow", 1.5) == 1.5,
		"an object as string":    dev.String("checkout.layout", "d") == "d",
		"absent JSON":            !dev.JSON("checkout.absent", &layout),
		"a string into a struct": !dev.JSON("checkout.title", &layout),
	} {
		if !got {
			t.Errorf("%s: not the default", name)
		}
	}
	if v := dev.ConfigValues(); len(v) != 6 || string(v["checkout.layout"]) != `{"cols":2,"tags":["a","b"]}` {
		t.Errorf("ConfigValues: %s", v)
	}

	w.setConfig("checkout", api.NamespaceEdit{Set: map[string]api.SetKey{"ratio": valued("0.5")}, Delete: []string{"limit"}})
	removeFirst()
	assertChanged(t, configure(t, dev), "checkout.limit", "checkout.ratio")
	if dev.Int("checkout.limit", -1) != -1 || dev.Float("checkout.ratio", 0) != 0.5 {
		t.Errorf("after the edit: limit %d, ratio %v", dev.Int("checkout.limit", -1), dev.Float("checkout.ratio", 0))
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"first checkout.layout,checkout.limit,checkout.new_flow,checkout.ratio,checkout.title,search.engine.v2",
		"second checkout.layout,checkout.limit,checkout.new_flow,checkout.ratio,checkout.title,search.engine.v2",
		"second checkout.limit,checkout.ratio",
	}
	if !slices.Equal(heard, want) {
		t.Errorf("listeners heard\n%q\nwant\n%q", heard, want)
	}
}

// TestConfigGray: a gray change reaches its whitelisted device and no
// other, and everyone once promoted, as the namespace's next version;
// another gray change, stopped, leaves everyone; one of a namespace
// without versions, stopped, takes the namespace away.
func TestConfigGray(t *testing.T) {
	w := newWorld(t)
	w.setConfig("checkout", api.NamespaceEdit{Set: map[string]api.SetKey{"new_flow": typed(mds.ConfigBoolean, "false")}})
	tester, other := w.device("tester", "2.1.0", ""), w.device("other", "2.1.0", "")
	for _, dev := range []*sdk.Client{tester, other} {
		assertChanged(t, configure(t, dev), "checkout.new_flow")
	}

	gray := w.release(w.configChange("checkout", map[string]api.SetKey{"new_flow": valued("true")}), "tester")
	assertChanged(t, configure(t, tester), "checkout.new_flow")
	assertChanged(t, configure(t, other))
	if !tester.Bool("checkout.new_flow", false) || other.Bool("checkout.new_flow", true) {
		t.Fatal("the gray change is not exactly the tester's")
	}

	if src := tester.ConfigSources()["checkout"]; src.Version != 1 || !slices.Equal(src.Gray, []int64{gray.ID}) {
		t.Errorf("the tester's checkout comes from %+v; want version 1 and task %d", src, gray.ID)
	}

	w.act(gray, mds.ActionPromote)
	assertChanged(t, configure(t, other), "checkout.new_flow")
	assertChanged(t, configure(t, tester)) // another document, the same values
	if !tester.Bool("checkout.new_flow", false) || !other.Bool("checkout.new_flow", false) {
		t.Fatal("after promotion, not everyone has the change")
	}
	if src := tester.ConfigSources()["checkout"]; src.Version != 2 || len(src.Gray) != 0 {
		t.Errorf("after promotion the tester's checkout comes from %+v; want version 2, no gray change", src)
	}

	// Two more changes for the tester: one turning the flow off, one of
	// a namespace that has no version.
	off := w.release(w.configChange("checkout", map[string]api.SetKey{"new_flow": valued("false")}), "tester")
	promo := w.release(w.configChange("promo", map[string]api.SetKey{"banner": typed(mds.ConfigString, `"50% off"`)}), "tester")
	assertChanged(t, configure(t, tester), "checkout.new_flow", "promo.banner")
	assertChanged(t, configure(t, other))
	if tester.Bool("checkout.new_flow", true) || tester.String("promo.banner", "") != "50% off" || other.String("promo.banner", "none") != "none" {
		t.Fatal("the gray changes are not exactly the tester's")
	}
	w.act(off, mds.ActionStop)
	w.act(promo, mds.ActionStop)
	assertChanged(t, configure(t, tester), "checkout.new_flow", "promo.banner")
	assertChanged(t, configure(t, other))
	for name, dev := range map[string]*sdk.Client{"tester": tester, "other": other} {
		if !dev.Bool("checkout.new_flow", false) || dev.String("promo.banner", "none") != "none" {
			t.Errorf("%s after the stops: %s", name, dev.ConfigValues())
		}
	}
}

// TestConfigNull: an answer whose config is null (an app whose only
// configuration was a gray change, stopped) drops everything the device
// held, on disk too.
func TestConfigNull(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	dev := open(t, dir, w.deviceConfig("d"))
	a, err := dev.Check(t.Context())
	if err != nil || a.Config != nil {
		t.Fatalf("an app without configuration: %+v, %v", a.Config, err)
	}
	task := w.release(w.configChange("promo", map[string]api.SetKey{"banner": typed(mds.ConfigString, `"hi"`)}), "d")
	assertChanged(t, configure(t, dev), "promo.banner")
	w.act(task, mds.ActionStop)
	if a, err = dev.Check(t.Context()); err != nil || a.Config != nil {
		t.Fatalf("after the stop: %+v, %v", a.Config, err)
	}
	changed, err := dev.UpdateConfig(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	assertChanged(t, changed, "promo.banner")
	dev.Close()
	if again := open(t, dir, w.deviceConfig("d")); len(again.ConfigValues()) != 0 {
		t.Errorf("reopened, the device holds %s", again.ConfigValues())
	}
}

// TestConfigWatched: a change reaches a watching device, through the
// listener, within a second of the write, each time; getters may be
// called meanwhile.
func TestConfigWatched(t *testing.T) {
	w := newWorld(t)
	w.setConfig("flags", api.NamespaceEdit{Set: map[string]api.SetKey{"level": typed(mds.ConfigInteger, "0")}})
	// The watch goes to the server itself: the test proxy, a Go
	// ReverseProxy, now and then cuts a stream as it starts (it reads the
	// request body to its end after the response began, when net/http has
	// closed it), and the reconnection's backoff would be measured.
	cfg := w.deviceConfig("d")
	cfg.Server = w.srv.URL
	dev := open(t, t.TempDir(), cfg)
	heard := make(chan []string, 10)
	dev.OnConfigChange(func(changed []string) { heard <- changed })
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		dev.Watch(ctx, sdk.WatchConfig{}, func(a *sdk.Answer) error {
			_, err := dev.UpdateConfig(ctx, a)
			return err
		}, func(err error) { t.Logf("watch: %v", err) })
	})
	wg.Go(func() { // a reader, for the race detector
		for ctx.Err() == nil {
			dev.Int("flags.level", -1)
			time.Sleep(time.Millisecond)
		}
	})
	wait := func(level int64) {
		t.Helper()
		select {
		case changed := <-heard:
			if !slices.Equal(changed, []string{"flags.level"}) || dev.Int("flags.level", -1) != level {
				t.Fatalf("heard %q with level %d, want level %d", changed, dev.Int("flags.level", -1), level)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("level %d did not reach the device", level)
		}
	}
	wait(0) // the answer the watch starts with
	for level := int64(1); level <= 3; level++ {
		w.setConfig("flags", api.NamespaceEdit{Set: map[string]api.SetKey{"level": valued(string(rune('0' + level)))}})
		written := time.Now()
		wait(level)
		if d := time.Since(written); d >= time.Second {
			t.Errorf("level %d reached the device %s after the write", level, d)
		}
	}
}

// TestConfigPersisted: the configuration outlives the client, exactly
// (a value with HTML in it is not reported changed when another key of
// its namespace is), and with the server down the device reads the last
// values it got: checks fail, and values stay.
func TestConfigPersisted(t *testing.T) {
	w := newWorld(t)
	w.setConfig("home", api.NamespaceEdit{Set: map[string]api.SetKey{
		"headline": typed(mds.ConfigString, `"<b>Sale</b> & more"`),
		"tiles":    typed(mds.ConfigInteger, "6"),
	}})
	dir := t.TempDir()
	dev := open(t, dir, w.deviceConfig("d"))
	assertChanged(t, configure(t, dev), "home.headline", "home.tiles")
	dev.Close()

	dev = open(t, dir, w.deviceConfig("d"))
	if dev.String("home.headline", "") != "<b>Sale</b> & more" || dev.Int("home.tiles", 0) != 6 {
		t.Fatalf("reopened: %s", dev.ConfigValues())
	}
	w.setConfig("home", api.NamespaceEdit{Set: map[string]api.SetKey{"tiles": valued("8")}})
	assertChanged(t, configure(t, dev), "home.tiles")
	dev.Close()

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfg := w.deviceConfig("d")
	cfg.Server = dead.URL
	dev = open(t, dir, cfg)
	if dev.String("home.headline", "") != "<b>Sale</b> & more" || dev.Int("home.tiles", 0) != 8 {
		t.Fatalf("offline, right after Open: %s", dev.ConfigValues())
	}
	if _, err := dev.Check(t.Context()); err == nil {
		t.Fatal("a check of a dead server succeeded")
	}
	if dev.Int("home.tiles", 0) != 8 || len(dev.ConfigValues()) != 2 {
		t.Errorf("after the failed check: %s", dev.ConfigValues())
	}
}

// TestConfigTampered: a file that is not the one the signed answer names
// (a document of other bytes of its size; an index with more bytes, or
// fewer) is refused, and the configuration held stays, in memory and on
// disk; once the attacker stops, the update goes through.
func TestConfigTampered(t *testing.T) {
	w := newWorld(t)
	w.setConfig("pay", api.NamespaceEdit{Set: map[string]api.SetKey{"provider": typed(mds.ConfigString, `"stripe"`)}})
	dir := t.TempDir()
	dev := open(t, dir, w.deviceConfig("d"))
	configure(t, dev)
	held, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	w.setConfig("pay", api.NamespaceEdit{Set: map[string]api.SetKey{"provider": valued(`"attacker"`)}})
	for _, c := range []struct {
		name   string
		change func([]byte) []byte
		want   error
	}{
		{"other bytes", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"attacker"`), []byte(`"stripe!!"`), 1)
		}, sdk.ErrHashMismatch},
		{"more bytes", func(b []byte) []byte { return append(bytes.Clone(b), ' ') }, sdk.ErrTooLong},
		{"fewer bytes", func(b []byte) []byte { return b[:len(b)-1] }, sdk.ErrHashMismatch},
	} {
		w.proxy.onBlob(c.change)
		a, err := dev.Check(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.UpdateConfig(t.Context(), a); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if now, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(now, held) || dev.String("pay.provider", "") != "stripe" {
			t.Errorf("%s changed the configuration: %s", c.name, dev.ConfigValues())
		}
	}
	w.proxy.honest()
	assertChanged(t, configure(t, dev), "pay.provider")
	if got := dev.String("pay.provider", ""); got != "attacker" {
		t.Errorf("after the attack: %q", got)
	}
}

// TestConfigUnchanged: an unchanged configuration is a 304 and fetches
// nothing; a change of one namespace fetches the index and that
// namespace's document only; and an index the configuration moved on
// from is ErrConfigMoved, leaving what the device holds.
func TestConfigUnchanged(t *testing.T) {
	w := newWorld(t)
	w.setConfig("a", api.NamespaceEdit{Set: map[string]api.SetKey{"x": typed(mds.ConfigInteger, "1")}})
	w.setConfig("b", api.NamespaceEdit{Set: map[string]api.SetKey{"y": typed(mds.ConfigInteger, "1")}})
	count := &counter{}
	cfg := w.deviceConfig("d")
	cfg.HTTPClient = &http.Client{Transport: count}
	dev := open(t, t.TempDir(), cfg)
	fetched := func() string { return fmt.Sprintf("%d indexes, %d documents", count.indexes.Load(), count.docs.Load()) }
	assertChanged(t, configure(t, dev), "a.x", "b.y")
	if got := fetched(); got != "1 indexes, 2 documents" {
		t.Fatalf("%s fetched for two namespaces", got)
	}
	a, err := dev.Check(t.Context())
	if err != nil || !a.NotModified {
		t.Fatalf("the second check: not modified %v, %v", a != nil && a.NotModified, err)
	}
	changed, err := dev.UpdateConfig(t.Context(), a)
	if err != nil || len(changed) != 0 || fetched() != "1 indexes, 2 documents" {
		t.Fatalf("an unchanged configuration: changed %q, %v, %s fetched in all", changed, err, fetched())
	}

	w.setConfig("b", api.NamespaceEdit{Set: map[string]api.SetKey{"y": valued("2")}})
	assertChanged(t, configure(t, dev), "b.y")
	if got := fetched(); got != "2 indexes, 3 documents" {
		t.Errorf("%s fetched in all; one namespace moved", got)
	}

	w.setConfig("a", api.NamespaceEdit{Set: map[string]api.SetKey{"x": valued("2")}})
	stale, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w.setConfig("a", api.NamespaceEdit{Set: map[string]api.SetKey{"x": valued("3")}})
	before := dev.ConfigValues()
	if _, err := dev.UpdateConfig(t.Context(), stale); !errors.Is(err, sdk.ErrConfigMoved) {
		t.Fatalf("an index no longer served: %v", err)
	}
	if after := dev.ConfigValues(); !reflect.DeepEqual(before, after) {
		t.Errorf("a failed update changed %s to %s", before, after)
	}
	assertChanged(t, configure(t, dev), "a.x")
	if got := dev.Int("a.x", 0); got != 3 {
		t.Errorf("checked again: a.x = %d", got)
	}
}

// TestConfigFollowsCheckedAnswers: only an answer Check returned is
// followed, and not one older than an answer accepted since.
func TestConfigFollowsCheckedAnswers(t *testing.T) {
	w := newWorld(t)
	w.setConfig("a", api.NamespaceEdit{Set: map[string]api.SetKey{"x": typed(mds.ConfigInteger, "1")}})
	dev := w.device("d", "2.1.0", "")
	old, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w.setConfig("a", api.NamespaceEdit{Set: map[string]api.SetKey{"x": valued("2")}})
	if _, err := dev.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.UpdateConfig(t.Context(), old); !errors.Is(err, sdk.ErrReplay) {
		t.Errorf("an answer older than one accepted: %v", err)
	}
	if _, err := dev.UpdateConfig(t.Context(), &sdk.Answer{App: old.App, Version: old.Version + 10, Config: old.Config}); !errors.Is(err, sdk.ErrUntrustedAnswer) {
		t.Errorf("an answer made by hand: %v", err)
	}
	if v := dev.ConfigValues(); len(v) != 0 {
		t.Errorf("refused answers changed the configuration: %s", v)
	}
}

// TestConfigNotReplaced: a configuration held is not replaced by one
// from an older answer, however late that answer is followed.
func TestConfigNotReplaced(t *testing.T) {
	w := newWorld(t)
	w.setConfig("home", api.NamespaceEdit{Set: map[string]api.SetKey{"tiles": typed(mds.ConfigInteger, "6")}})
	dir := t.TempDir()
	dev := open(t, dir, w.deviceConfig("d"))
	assertChanged(t, configure(t, dev), "home.tiles")
	dev.Close()
	// As if a newer answer's configuration had been taken in meanwhile.
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var held map[string]any
	if err := json.Unmarshal(b, &held); err != nil || held["version"] == nil {
		t.Fatalf("config.json %s: %v", b, err)
	}
	held["version"] = 1 << 40
	b, _ = json.Marshal(held)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dev = open(t, dir, w.deviceConfig("d"))
	w.setConfig("home", api.NamespaceEdit{Set: map[string]api.SetKey{"tiles": valued("8")}})
	a, err := dev.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.UpdateConfig(t.Context(), a); !errors.Is(err, sdk.ErrReplay) {
		t.Errorf("an answer older than the configuration held: %v", err)
	}
	if dev.Int("home.tiles", 0) != 6 {
		t.Errorf("the configuration held was replaced: %s", dev.ConfigValues())
	}
}
