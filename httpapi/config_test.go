package httpapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/watch"
)

// configNamespace is one namespace of an answer's config section.
type configNamespace struct {
	Version int64   `json:"version"`
	Gray    []int64 `json:"gray"`
	SHA256  string  `json:"sha256"`
	Size    int     `json:"size"`
	URL     string  `json:"url"`
}

// configOf checks as dev and returns what it sees of each namespace,
// the index and each document fetched and held to the digest and size
// that name it, and the check's response.
func (e *testEnv) configOf(dev map[string]any, header ...string) (map[string]map[string]json.RawMessage, *http.Response, map[string]configNamespace) {
	e.t.Helper()
	resp, b := e.request("POST", "/client/v1/check", "", dev, header...)
	if resp.StatusCode == http.StatusNotModified {
		return nil, resp, nil
	}
	if resp.StatusCode != 200 {
		e.t.Fatalf("check: %d %s", resp.StatusCode, b)
	}
	e.verifyAnswer(resp, b, e.AnswerKey.Public())
	var a struct {
		Config *configRef `json:"config"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]map[string]json.RawMessage{}
	if a.Config == nil {
		return out, resp, nil
	}
	if len(b) > 2048 {
		e.t.Errorf("a check answer of %d bytes", len(b))
	}
	index := e.configIndex(*a.Config)
	for ns, entry := range index {
		out[ns] = e.configDocument(ns, entry)
	}
	return out, resp, index
}

// configRef is the config section of an answer: where its index is.
type configRef struct {
	SHA256 string `json:"sha256"`
	Size   int    `json:"size"`
	URL    string `json:"url"`
}

// fetchVerified fetches url and holds it to sum and size.
func (e *testEnv) fetchVerified(url, sum string, size int) []byte {
	e.t.Helper()
	resp, body := e.request("GET", strings.TrimPrefix(url, e.URL), "", nil)
	got := sha256.Sum256(body)
	if resp.StatusCode != 200 || hex.EncodeToString(got[:]) != sum || len(body) != size {
		e.t.Fatalf("%s: %d, %d bytes of sha256 %x; named as %d bytes of %s", url, resp.StatusCode, len(body), got, size, sum)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		e.t.Errorf("%s: Cache-Control %q", url, cc)
	}
	return body
}

// configIndex fetches the index ref names.
func (e *testEnv) configIndex(ref configRef) map[string]configNamespace {
	e.t.Helper()
	var index struct {
		Namespaces map[string]configNamespace `json:"namespaces"`
	}
	if err := json.Unmarshal(e.fetchVerified(ref.URL, ref.SHA256, ref.Size), &index); err != nil {
		e.t.Fatal(err)
	}
	return index.Namespaces
}

// configDocument fetches the document of one namespace entry and checks
// it against the entry.
func (e *testEnv) configDocument(ns string, entry configNamespace) map[string]json.RawMessage {
	e.t.Helper()
	body := e.fetchVerified(entry.URL, entry.SHA256, entry.Size)
	var doc struct {
		Namespace string                     `json:"namespace"`
		Version   int64                      `json:"version"`
		Gray      []int64                    `json:"gray"`
		Values    map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Namespace != ns || doc.Version != entry.Version || fmt.Sprint(doc.Gray) != fmt.Sprint(entry.Gray) {
		e.t.Fatalf("%s: document %s (%v) does not match its entry %+v", ns, body, err, entry)
	}
	return doc.Values
}

func (e *testEnv) editConfig(app string, body any) *api.ConfigVersions {
	e.t.Helper()
	var out api.ConfigVersions
	e.call("POST", "/api/v1/apps/"+app+"/config", e.admin, body, 201, &out)
	return &out
}

// configGray creates a gray change and a live task releasing it to tg.
func (e *testEnv) configGray(app string, change, tg map[string]any) *fullTask {
	e.t.Helper()
	var p api.Package
	e.call("POST", "/api/v1/apps/"+app+"/config/changes", e.admin, change, 201, &p)
	if p.Kind != mds.KindConfig || p.Config == nil {
		e.t.Fatalf("a config change package: %+v", p)
	}
	var t fullTask
	e.call("POST", "/api/v1/apps/"+app+"/tasks", e.admin, map[string]any{"package_id": p.ID, "targeting": tg, "release": true}, 201, &t)
	return &t
}

func set(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestConfigValidation(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	schema := json.RawMessage(`{"type":"object","properties":{"title":{"type":"string"},"max":{"type":"integer","minimum":1}},"required":["title"],"additionalProperties":false}`)
	out := e.editConfig("shop", map[string]any{"message": "first", "namespaces": map[string]any{"checkout": map[string]any{"set": map[string]any{
		"new_flow": set("type", "boolean", "value", true),
		"limit":    set("type", "integer", "value", json.RawMessage(`1e2`)),
		"ratio":    set("type", "float", "value", 0.25),
		"title":    set("type", "string", "value", "Sale <now>"),
		"banner":   set("type", "json", "value", json.RawMessage(`{"title":"Hi","max":3}`), "schema", schema),
	}}}})
	if len(out.Versions) != 1 || out.Versions[0].Number != 1 || out.Versions[0].KeyCount != 5 || out.Versions[0].CreatedBy != "admin" ||
		string(out.Versions[0].Keys["limit"].Value) != "100" {
		t.Fatalf("the first version: %+v", out.Versions)
	}
	for _, c := range []struct {
		name   string
		key    map[string]any
		detail string
	}{
		{"a string for an integer", set("type", "integer", "value", "7"), "not a number"},
		{"a fraction for an integer", set("type", "integer", "value", 1.5), "not an integer"},
		{"null for a boolean", set("type", "boolean", "value", nil), "not a boolean"},
		{"a value outside the schema", set("value", json.RawMessage(`{"title":"x","max":0}`)), "/max"},
		{"a member the schema forbids", set("value", json.RawMessage(`{"title":"x","colour":"red"}`)), "colour"},
		{"a schema that is not one", set("type", "json", "value", 1, "schema", json.RawMessage(`{"type":"nonsense"}`)), "schema"},
		{"a schema with a reference", set("type", "json", "value", 1, "schema", json.RawMessage(`{"$ref":"https://example.com/s.json"}`)), "stand alone"},
		{"a schema on a string", set("type", "string", "value", "x", "schema", json.RawMessage(`{}`)), "only json keys"},
		{"an unknown type", set("type", "date", "value", "x"), "validation failed"}, // and the errors name the types
		{"a new key without a type", set("value", 1), "give its type"},
	} {
		name := "banner"
		if c.name == "a new key without a type" {
			name = "fresh"
		}
		resp, b := e.request("POST", "/api/v1/apps/shop/config", e.admin, map[string]any{"namespaces": map[string]any{
			"checkout": map[string]any{"set": map[string]any{name: c.key}}}})
		if resp.StatusCode != http.StatusUnprocessableEntity && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, b)
			continue
		}
		e.wantProblem(resp, b, resp.StatusCode, c.detail)
	}
	for _, c := range []struct {
		name, path string
		body       any
		detail     string
	}{
		{"a key name with a space", "/api/v1/apps/shop/config", map[string]any{"namespaces": map[string]any{"checkout": map[string]any{
			"set": map[string]any{"a b": set("type", "string", "value", "x")}}}}, "config key"},
		{"a namespace with a dot", "/api/v1/apps/shop/config", map[string]any{"namespaces": map[string]any{"check.out": map[string]any{
			"set": map[string]any{"a": set("type", "string", "value", "x")}}}}, "namespace"},
		{"a stale base", "/api/v1/apps/shop/config", map[string]any{"namespaces": map[string]any{"checkout": map[string]any{
			"base": 0, "set": map[string]any{"a": set("type", "string", "value", "x")}}}}, "at version 1"},
		{"a rollback to nothing", "/api/v1/apps/shop/config/checkout/rollback", map[string]any{"to": 9}, "no version 9"},
		{"a gray change of nothing", "/api/v1/apps/shop/config/changes", map[string]any{"namespace": "checkout"}, "at least one key"},
		{"a gray change outside the schema", "/api/v1/apps/shop/config/changes", map[string]any{"namespace": "checkout",
			"set": map[string]any{"banner": set("value", json.RawMessage(`{"max":2}`))}}, "title"},
	} {
		resp, b := e.request("POST", c.path, e.admin, c.body)
		if resp.StatusCode < 400 {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, b)
			continue
		}
		e.wantProblem(resp, b, resp.StatusCode, c.detail)
	}
	// Nothing refused was stored.
	var cur api.ConfigVersions
	e.call("GET", "/api/v1/apps/shop/config", e.admin, nil, 200, &cur)
	if len(cur.Versions) != 1 || cur.Versions[0].Number != 1 || len(cur.Versions[0].Keys) != 5 {
		t.Errorf("after refusals the app holds %+v", cur.Versions)
	}
	var pkgs api.Packages
	e.call("GET", "/api/v1/apps/shop/packages?kind=config", e.admin, nil, 200, &pkgs)
	if len(pkgs.Packages) != 0 {
		t.Errorf("refused gray changes left packages: %+v", pkgs.Packages)
	}
	// A write of megabytes is taken, up to what an app may hold.
	large := map[string]any{}
	for i := range 40 {
		large[fmt.Sprintf("text%02d", i)] = set("type", "string", "value", strings.Repeat("é", 30_000))
	}
	if out := e.editConfig("shop", map[string]any{"namespaces": map[string]any{"texts": map[string]any{"set": large}}}); len(out.Versions) != 1 || out.Versions[0].Size < 2_000_000 {
		t.Errorf("a 2 MB write: %+v", out.Versions)
	}
	for i := range 40 {
		large[fmt.Sprintf("more%02d", i)] = set("type", "string", "value", strings.Repeat("é", 30_000))
	}
	resp, b := e.request("POST", "/api/v1/apps/shop/config", e.admin, map[string]any{"namespaces": map[string]any{"texts": map[string]any{"set": large}}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "at most 4194304") {
		t.Errorf("a write past the bytes an app may hold: %d %.300s", resp.StatusCode, b)
	}
	e.editConfig("shop", map[string]any{"namespaces": map[string]any{"texts": map[string]any{"replace": true}}})

	// A value keeps its key's schema: a valid one is taken.
	v := e.editConfig("shop", map[string]any{"namespaces": map[string]any{"checkout": map[string]any{"set": map[string]any{
		"banner": set("value", json.RawMessage(`{"title":"Bye"}`))}}}})
	if len(v.Versions) != 1 || v.Versions[0].Number != 2 || string(v.Versions[0].Keys["banner"].Schema) != string(schema) {
		t.Errorf("a value set alone: %+v", v.Versions)
	}
}

// TestConfigDelivery walks a configuration through its life over HTTP:
// a version reaching every device, a gray change reaching only its
// audience, a new version that leaves the gray value to that audience,
// promotion, abandonment, rollback, and what explain says of each value.
func TestConfigDelivery(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android, mds.IOS)
	e.createApp("blog", mds.Android)
	tester, other := with(device(shop, mds.Android, "2.0"), "device_id", "tester"), with(device(shop, mds.Android, "2.0"), "device_id", "other")

	seen, _, _ := e.configOf(tester)
	if len(seen) != 0 {
		t.Fatalf("an app without configuration: %v", seen)
	}
	e.editConfig("shop", map[string]any{"message": "launch", "namespaces": map[string]any{
		"checkout": map[string]any{"set": map[string]any{"new_flow": set("type", "boolean", "value", false), "limit": set("type", "integer", "value", 3)}},
		"payment":  map[string]any{"set": map[string]any{"currency": set("type", "string", "value", "CNY")}},
	}})
	want := func(dev map[string]any, ns, key, value string) {
		t.Helper()
		seen, _, _ := e.configOf(dev)
		if got := string(seen[ns][key]); got != value {
			t.Errorf("%s sees %s.%s = %s, want %s", dev["device_id"], ns, key, got, value)
		}
	}
	want(tester, "checkout", "new_flow", "false")
	want(other, "payment", "currency", `"CNY"`)

	// An unchanged configuration is a 304, whatever other apps do.
	_, resp, entries := e.configOf(other)
	e.editConfig("blog", map[string]any{"namespaces": map[string]any{"x": map[string]any{"set": map[string]any{"y": set("type", "integer", "value", 1)}}}})
	if _, again, _ := e.configOf(other, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("an unchanged configuration: %d, want 304", again.StatusCode)
	}
	// A write that changes nothing makes no version.
	if out := e.editConfig("shop", map[string]any{"namespaces": map[string]any{"payment": map[string]any{"set": map[string]any{"currency": set("value", "CNY")}}}}); len(out.Versions) != 0 {
		t.Errorf("an edit that changes nothing made %+v", out.Versions)
	}
	if _, again, _ := e.configOf(other, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
		t.Errorf("after an edit that changed nothing: %d, want 304", again.StatusCode)
	}

	// A gray change for the tester alone.
	wl := e.createWhitelist("shop", "testers", "device", "device_id\ntester\n")
	gray := e.configGray("shop", map[string]any{"namespace": "checkout", "message": "try the new flow",
		"set": map[string]any{"new_flow": set("value", true)}, "delete": []string{"limit"}}, map[string]any{"whitelists": []int64{wl.ID}})
	want(tester, "checkout", "new_flow", "true")
	want(tester, "checkout", "limit", "")
	want(other, "checkout", "new_flow", "false")
	want(other, "checkout", "limit", "3")
	if _, _, now := e.configOf(other); now["payment"].SHA256 != entries["payment"].SHA256 || now["checkout"].SHA256 != entries["checkout"].SHA256 {
		t.Errorf("a device outside the gray audience was given another configuration: %+v, was %+v", now, entries)
	}

	// A new version for everyone leaves the gray value to its audience.
	e.editConfig("shop", map[string]any{"message": "turn it on for some", "namespaces": map[string]any{"checkout": map[string]any{"set": map[string]any{
		"new_flow": set("value", false), "limit": set("value", 5), "theme": set("type", "string", "value", "dark")}}}})
	want(tester, "checkout", "new_flow", "true")
	want(tester, "checkout", "limit", "")
	want(tester, "checkout", "theme", `"dark"`)
	want(other, "checkout", "limit", "5")

	// Explain names the source of each value.
	var ex api.ExplainResult
	e.call("POST", "/api/v1/apps/shop/explain", e.admin, map[string]any{"device": tester}, 200, &ex)
	sources := map[string]string{}
	for _, ns := range ex.Config {
		for _, k := range ns.Keys {
			sources[ns.Namespace+"."+k.Key] = fmt.Sprintf("v%d t%d %s deleted=%v", k.Version, k.TaskID, k.Value, k.Deleted)
		}
	}
	for key, src := range map[string]string{
		"checkout.new_flow": fmt.Sprintf("v0 t%d true deleted=false", gray.ID),
		"checkout.limit":    fmt.Sprintf("v0 t%d  deleted=true", gray.ID),
		"checkout.theme":    "v2 t0 \"dark\" deleted=false",
		"payment.currency":  "v1 t0 \"CNY\" deleted=false",
	} {
		if sources[key] != src {
			t.Errorf("explain says %s comes from %q, want %q (all: %v)", key, sources[key], src, sources)
		}
	}

	// A second gray change of the same key, newer, wins for its audience;
	// abandoning it hands the key back to the older one.
	wl2 := e.createWhitelist("shop", "more", "device", "device_id\ntester\nother\n")
	newer := e.configGray("shop", map[string]any{"namespace": "checkout", "set": map[string]any{"limit": set("value", 9)}},
		map[string]any{"whitelists": []int64{wl2.ID}})
	want(tester, "checkout", "limit", "9")
	want(other, "checkout", "limit", "9")
	e.act("shop", newer.ID, mds.ActionStop)
	want(tester, "checkout", "limit", "")
	want(other, "checkout", "limit", "5")

	// Promotion: the change becomes the next version, for everyone.
	e.act("shop", gray.ID, mds.ActionPromote)
	var task fullTask
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/tasks/%d", gray.ID), e.admin, nil, 200, &task)
	if task.Status != "stopped" || task.Stage != "official" {
		t.Errorf("a promoted change: %s %s; want stopped and official", task.Status, task.Stage)
	}
	var v mds.ConfigVersion
	e.call("GET", "/api/v1/apps/shop/config/checkout", e.admin, nil, 200, &v)
	if v.Number != 3 || v.Promotes != gray.ID || !strings.Contains(v.Message, "try the new flow") || string(v.Keys["new_flow"].Value) != "true" || v.Keys["limit"].Value != nil {
		t.Errorf("the promoted version: %+v", v)
	}
	want(other, "checkout", "new_flow", "true")
	want(other, "checkout", "limit", "")

	// Rollback to version 1: a new version holding what 1 held.
	var rb api.ConfigVersions
	e.call("POST", "/api/v1/apps/shop/config/checkout/rollback", e.admin, map[string]any{"to": 1}, 201, &rb)
	if len(rb.Versions) != 1 || rb.Versions[0].Number != 4 || rb.Versions[0].Restores != 1 {
		t.Fatalf("rollback made %+v", rb.Versions)
	}
	want(other, "checkout", "new_flow", "false")
	want(other, "checkout", "limit", "3")
	want(tester, "checkout", "theme", "")
	var history api.ConfigVersions
	e.call("GET", "/api/v1/apps/shop/config/checkout/versions?limit=2", e.admin, nil, 200, &history)
	if len(history.Versions) != 2 || history.Versions[0].Number != 4 || history.Versions[1].Number != 3 || history.Next != "3" || history.Versions[0].Keys != nil {
		t.Errorf("history: %+v next %q", history.Versions, history.Next)
	}
	var diff api.ConfigDiff
	e.call("GET", "/api/v1/apps/shop/config/checkout/diff?from=2&to=4", e.admin, nil, 200, &diff)
	if len(diff.Keys) != 2 || diff.Keys[0].Key != "limit" || string(diff.Keys[0].From.Value) != "5" || string(diff.Keys[0].To.Value) != "3" ||
		diff.Keys[1].Key != "theme" || diff.Keys[1].To != nil {
		t.Errorf("diff 2→4: %+v", diff.Keys)
	}

	// Another app's token reaches none of it, nor do devices.
	stranger := e.createToken(e.admin, "stranger", grant("blog", mds.RoleAdmin))
	for _, path := range []string{"/api/v1/apps/shop/config", "/api/v1/apps/shop/config/checkout", "/api/v1/apps/shop/config/checkout/versions"} {
		if resp, _ := e.request("GET", path, stranger, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("another app's token: GET %s: %d", path, resp.StatusCode)
		}
		if resp, _ := e.request("GET", path, "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("no token: GET %s: %d", path, resp.StatusCode)
		}
	}
	viewer := e.createToken(e.admin, "viewer", grant("shop", mds.RoleViewer))
	if resp, _ := e.request("POST", "/api/v1/apps/shop/config", viewer, map[string]any{"namespaces": map[string]any{"payment": map[string]any{"delete": []string{"currency"}}}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer edits configuration: %d", resp.StatusCode)
	}
	// A document another configuration named is gone, and a made-up one
	// was never there.
	if resp, _ := e.request("GET", strings.TrimPrefix(entries["checkout"].URL, e.URL), "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a document of a configuration that moved on: %d", resp.StatusCode)
	}
	_, _, now := e.configOf(other)
	forged := strings.Replace(now["checkout"].URL, "gray=", fmt.Sprintf("gray=%d", gray.ID), 1)
	if resp, _ := e.request("GET", strings.TrimPrefix(forged, e.URL), "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a document under a set of changes that does not make it: %d", resp.StatusCode)
	}
}

// TestConfigPush: a configuration change is pushed to the watchers whose
// configuration it changes, and to no other.
func TestConfigPush(t *testing.T) {
	e := newEnv(t, withWatch(watch.Config{Sweep: time.Hour}))
	shop := e.createApp("shop", mds.Android)
	e.editConfig("shop", map[string]any{"namespaces": map[string]any{"ui": map[string]any{"set": map[string]any{"theme": set("type", "string", "value", "light")}}}})
	tester, other := with(device(shop, mds.Android, "2.0"), "device_id", "tester"), with(device(shop, mds.Android, "2.0"), "device_id", "other")
	ts, os := e.watch(tester), e.watch(other)
	ts.next(t)
	os.next(t)
	// A write that changes no one's configuration sends nothing.
	e.editConfig("shop", map[string]any{"namespaces": map[string]any{"ui": map[string]any{"set": map[string]any{"theme": set("value", "light")}}}})
	wl := e.createWhitelist("shop", "testers", "device", "device_id\ntester\n")
	ts.quiet(t, 200*time.Millisecond, "the tester, after writes that changed no configuration,")
	os.quiet(t, 0, "the other device, after writes that changed no configuration,")

	e.configGray("shop", map[string]any{"namespace": "ui", "set": map[string]any{"theme": set("value", "dark")}}, map[string]any{"whitelists": []int64{wl.ID}})
	start := time.Now()
	ev := ts.next(t)
	if d := time.Since(start); d > time.Second {
		t.Errorf("the change reached the watcher in %s", d)
	}
	var a struct {
		Config configRef `json:"config"`
	}
	if err := json.Unmarshal([]byte(ev.data[:strings.LastIndexByte(ev.data, '\n')]), &a); err != nil {
		t.Fatal(err)
	}
	if got := e.configDocument("ui", e.configIndex(a.Config)["ui"]); string(got["theme"]) != `"dark"` {
		t.Errorf("the watcher was sent %s", got["theme"])
	}
	os.quiet(t, 200*time.Millisecond, "a device outside the change's audience")
}

// TestConfigConcurrent: checks of devices under different sets of gray
// changes, and fetches of what they are given, all at once (run under the
// race detector in development), each get what verifies.
func TestConfigConcurrent(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	e.editConfig("shop", map[string]any{"namespaces": map[string]any{
		"a": map[string]any{"set": map[string]any{"x": set("type", "integer", "value", 0)}},
		"b": map[string]any{"set": map[string]any{"y": set("type", "integer", "value", 0)}},
	}})
	for i, pct := range []float64{20, 50, 80} {
		e.configGray("shop", map[string]any{"namespace": []string{"a", "b", "a"}[i], "set": map[string]any{[]string{"x", "y", "x"}[i]: set("value", i+1)}},
			map[string]any{"rollout": map[string]any{"percent": pct}})
	}
	var wg sync.WaitGroup
	seen := make(chan string, 8*25)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				dev := with(device(shop, mds.Android, "2.0"), "device_id", fmt.Sprintf("d-%d-%d", g, i))
				got, _, _ := e.configOf(dev)
				seen <- string(got["a"]["x"]) + "/" + string(got["b"]["y"])
			}
		})
	}
	wg.Wait()
	close(seen)
	kinds := map[string]bool{}
	for s := range seen {
		kinds[s] = true
	}
	// Nested in the cohort: 0/0, 1/0 or 3/0 … the devices fall in a few.
	if len(kinds) < 2 || len(kinds) > 4 {
		t.Errorf("200 devices saw %d configurations: %v", len(kinds), kinds)
	}
}
