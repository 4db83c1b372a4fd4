package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/client"
)

// configApp is an app "shop" on a test server, for configuration tests.
func configApp(t *testing.T) (url string, c *client.Client) {
	t.Helper()
	url = newServer(t)
	mustCLI(t, url, cliAdmin, "app", "create", "shop", "--platform", "android")
	return url, client.New(url, cliAdmin)
}

// configWant fails the test unless out matches every pattern, each a
// regular expression matched line by line (spaces stand for any run of
// spaces, as tables align their columns).
func configWant(t *testing.T, what, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		re := regexp.MustCompile(`(?m)^` + strings.ReplaceAll(p, " ", ` +`) + `$`)
		if !re.MatchString(out) {
			t.Errorf("%s printed no line %q:\n%s", what, p, out)
		}
	}
}

// configErr fails the test unless the command fails with an error saying
// want.
func configErr(t *testing.T, url string, want string, args ...string) {
	t.Helper()
	out, err := mdsCLI(t, url, cliAdmin, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("mds %s: %v, want an error saying %q\n%s", strings.Join(args, " "), err, want, out)
	}
}

func configFileAt(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCLIConfigSetGet: keys of every type set and read back, a value
// that is not JSON taken as text only for a string key, the server's
// word on a value of the wrong type, a new key without a type and a
// value its schema refuses, and a write that changes nothing.
func TestCLIConfigSetGet(t *testing.T) {
	url, c := configApp(t)
	if out := mustCLI(t, url, cliAdmin, "config", "get", "--app", "shop"); !strings.Contains(out, "no configuration yet") {
		t.Errorf("get of an app without configuration:\n%s", out)
	}
	out := mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "new_flow=true", "--type", "boolean", "--message", "first")
	configWant(t, "set", out, "checkout: version 1", "  [+] new_flow boolean true")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "retries=3", "--type", "integer")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "ratio=0.5", "--type", "float")
	out = mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "title=Summer sale", "--type", "string", "--description", "the banner's title")
	configWant(t, "set", out, "checkout: version 4", `  [+] title string "Summer sale"`)
	// An existing string key takes text as it is, and keeps its
	// description.
	out = mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "title=Winter", "retries=5")
	configWant(t, "set", out, "checkout: version 5", `  ~ retries integer 3 → 5`, `  ~ title string "Summer sale" → "Winter"`)

	schema := configFileAt(t, "banner.schema.yaml", "type: object\nrequired: [title]\nproperties:\n  title: {type: string}\n")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", `banner={"title":"Sale","color":"red"}`, "--type", "json", "--schema", schema)

	for _, tc := range []struct{ arg, want string }{
		{"retries=abc", `checkout.retries is of type integer, and "abc" is not JSON`},
		{"retries=1.5", "the value 1.5 is not an integer within 64 bits"},
		{"new_flow=yes", `checkout.new_flow is of type boolean, and "yes" is not JSON`},
		{"new_flow=1", "is not a boolean; give true or false"},
		{"title=42", "is not a string; give it in double quotes"},
		{"brand_new=1", "checkout.brand_new is a new key: give its type"},
		{"brand_new=x", "checkout.brand_new is a new key: give its type with --type"},
		{`banner={"color":"blue"}`, "does not fit the key's schema"},
		{"no_equals", "write KEY=VALUE"},
	} {
		configErr(t, url, tc.want, "config", "set", "--app", "shop", "checkout", tc.arg)
	}
	configErr(t, url, "give --type with them", "config", "set", "--app", "shop", "checkout", "banner={}", "--description", "x")
	configErr(t, url, "is at version 6", "config", "set", "--app", "shop", "checkout", "retries=6", "--base", "5")

	out = mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "retries=5")
	configWant(t, "set", out, "checkout: unchanged at version 6")
	out = mustCLI(t, url, cliAdmin, "config", "get", "--app", "shop", "checkout")
	configWant(t, "get", out, `checkout: version 6, .* by admin`, "NAME TYPE VALUE",
		`banner json, schema {"color":"red","title":"Sale"}`, "new_flow boolean true", "ratio float 0.5", "retries integer 5", `title string "Winter"`)
	out = mustCLI(t, url, cliAdmin, "config", "get", "--app", "shop", "checkout", "--version", "1")
	configWant(t, "get --version 1", out, "checkout: version 1, .*", "new_flow boolean true")
	if strings.Contains(out, "retries") {
		t.Errorf("version 1 holds retries:\n%s", out)
	}
	configErr(t, url, "namespace checkout has no version 9", "config", "get", "--app", "shop", "checkout", "--version", "9")

	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "search", "engine=v2", "--type", "string")
	var all api.ConfigVersions
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "config", "get", "--app", "shop", "--json")), &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Versions) != 2 || all.Versions[0].Namespace != "checkout" || all.Versions[0].Number != 6 || all.Versions[1].Namespace != "search" {
		t.Fatalf("get --json: %+v", all.Versions)
	}
	title := all.Versions[0].Keys["title"]
	if title.Description != "the banner's title" || string(title.Value) != `"Winter"` || len(all.Versions[0].Keys["banner"].Schema) == 0 {
		t.Errorf("keys read back: title %+v, banner %+v", title, all.Versions[0].Keys["banner"])
	}

	out = mustCLI(t, url, cliAdmin, "config", "delete", "--app", "shop", "checkout", "ratio", "retries", "--message", "tidy")
	configWant(t, "delete", out, "checkout: version 7", "  - ratio float 0.5", "  - retries integer 5")
	out = mustCLI(t, url, cliAdmin, "config", "delete", "--app", "shop", "checkout", "ratio")
	configWant(t, "delete", out, "checkout: unchanged at version 7")
	v, err := c.ConfigVersion(t.Context(), "shop", "checkout", 0)
	if err != nil || v.Number != 7 || v.Message != "tidy" || len(v.Keys) != 3 {
		t.Errorf("after delete: %v %+v", err, v)
	}
}

const applyYAML = `message: summer sale
namespaces:
  checkout:
    new_flow: {type: boolean, value: true}
    retries: {type: integer, value: 3}
    banner:
      type: json
      description: the home banner
      schema:
        type: object
        required: [title]
        properties: {title: {type: string}, ratio: {type: number}}
      value: {title: Sale, ratio: 1.50, shown: 2026-06-01}
  payments:
    limit: {type: float, value: 99.5}
    provider: {type: string, value: "2026-01-01"}
`

// TestCLIConfigApply: namespaces applied from YAML and from JSON replace
// what the namespaces hold, leave other namespaces alone, change nothing
// applied again or in a dry run, and name the namespace and key of a
// mistake in the file before anything is written.
func TestCLIConfigApply(t *testing.T) {
	url, c := configApp(t)
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "search", "engine=v2", "--type", "string")
	file := configFileAt(t, "config.yaml", applyYAML)

	out := mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "--file", file, "--dry-run")
	configWant(t, "apply --dry-run", out, "checkout: would make version 1", `  [+] banner json, schema {"ratio":1.50,"shown":"2026-06-01","title":"Sale"}`,
		"  [+] new_flow boolean true", "payments: would make version 1", `  [+] provider string "2026-01-01"`, "dry run: nothing written")
	if res, err := c.Config(t.Context(), "shop"); err != nil || len(res.Versions) != 1 {
		t.Fatalf("a dry run wrote: %v %+v", err, res)
	}

	out = mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "--file", file)
	configWant(t, "apply", out, "checkout: version 1", "  [+] retries integer 3", "payments: version 1", "  [+] limit float 99.5")
	v, err := c.ConfigVersion(t.Context(), "shop", "checkout", 0)
	if err != nil || v.Message != "summer sale" || v.Keys["banner"].Description != "the home banner" {
		t.Fatalf("applied: %v %+v", err, v)
	}
	out = mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "--file", file)
	configWant(t, "apply again", out, "checkout: unchanged at version 1", "payments: unchanged at version 1")

	// The same configuration as JSON, spaced and ordered otherwise,
	// changes nothing; then a namespace replaced: keys it lacks deleted,
	// others changed, the namespaces it does not name left alone.
	same := configFileAt(t, "config.json", `{
  "namespaces": {
    "payments": {"provider": {"value": "2026-01-01", "type": "string"}, "limit": {"type": "float", "value": 99.50}},
    "checkout": {
      "retries": {"type": "integer", "value": 3.0},
      "new_flow": {"type": "boolean", "value": true},
      "banner": {"type": "json", "description": "the home banner", "value": {"shown": "2026-06-01", "ratio": 1.50, "title": "Sale"},
        "schema": {"properties": {"ratio": {"type": "number"}, "title": {"type": "string"}}, "required": ["title"], "type": "object"}}
    }
  }
}`)
	out = mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "--file", same)
	configWant(t, "apply of the same as JSON", out, "checkout: unchanged at version 1", "payments: unchanged at version 1")
	changed := configFileAt(t, "changed.json", `{"namespaces": {"checkout": {
  "new_flow": {"type": "boolean", "value": false},
  "banner": {"type": "json", "value": {"title": "Sale"}},
  "title": {"type": "string", "value": "Hello"}}}}`)
	out = mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "--file", changed, "--message", "winter")
	configWant(t, "apply of a change", out, "checkout: version 2",
		`  ~ banner json {"ratio":1.50,"shown":"2026-06-01","title":"Sale"} → {"title":"Sale"}; schema removed; description "the home banner" → ""`,
		"  ~ new_flow boolean true → false", "  - retries integer 3", `  [+] title string "Hello"`)
	if strings.Contains(out, "payments") || strings.Contains(out, "search") {
		t.Errorf("apply printed namespaces the file does not name:\n%s", out)
	}
	res, err := c.Config(t.Context(), "shop")
	if err != nil || len(res.Versions) != 3 {
		t.Fatalf("config after apply: %v %+v", err, res)
	}
	for _, v := range res.Versions {
		want := map[string]int64{"checkout": 2, "payments": 1, "search": 1}[v.Namespace]
		if v.Number != want {
			t.Errorf("%s is at version %d, want %d", v.Namespace, v.Number, want)
		}
		if v.Namespace == "checkout" && (len(v.Keys) != 3 || v.Message != "winter") {
			t.Errorf("checkout replaced: %+v", v)
		}
	}
	var plan struct {
		DryRun     bool             `json:"dry_run"`
		Namespaces []api.ConfigDiff `json:"namespaces"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "config", "apply", "--app", "shop", "-f", file, "--dry-run", "--json")), &plan); err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || len(plan.Namespaces) != 2 || plan.Namespaces[0].From != 2 || plan.Namespaces[0].To != 3 || len(plan.Namespaces[0].Keys) != 4 ||
		plan.Namespaces[1].From != 1 || plan.Namespaces[1].To != 1 || len(plan.Namespaces[1].Keys) != 0 {
		t.Errorf("apply --dry-run --json: %+v", plan)
	}

	// A value its schema refuses is the server's to say, and the write
	// is refused whole.
	refused := configFileAt(t, "refused.yaml", `namespaces:
  payments: {limit: {type: float, value: 1}}
  checkout:
    banner: {type: json, schema: {type: object, required: [title]}, value: {color: red}}
`)
	configErr(t, url, "does not fit the key's schema", "config", "apply", "--app", "shop", "--file", refused)
	if v, _ := c.ConfigVersion(t.Context(), "shop", "payments", 0); v.Number != 1 {
		t.Errorf("a refused apply wrote payments version %d", v.Number)
	}

	for name, tc := range map[string]struct{ text, want string }{
		"unknown.yaml":  {"namespaces:\n  checkout:\n    banner: {type: json, valeu: 1}\n", `namespace checkout: key banner: unknown field "valeu"`},
		"notype.yaml":   {"namespaces:\n  checkout:\n    banner: {value: 1}\n", "namespace checkout: key banner: give its type"},
		"novalue.yaml":  {"namespaces:\n  checkout:\n    banner: {type: json}\n", "namespace checkout: key banner: give its value"},
		"badtype.yaml":  {"namespaces:\n  checkout:\n    banner: {type: text, value: x}\n", `namespace checkout: key banner: config type "text" is not one of`},
		"badvalue.yaml": {"namespaces:\n  checkout:\n    retries: {type: integer, value: three}\n", `namespace checkout: key retries: the value "three" is not a number`},
		"schema.yaml":   {"namespaces:\n  checkout:\n    n: {type: integer, value: 1, schema: {}}\n", "namespace checkout: key n: only json keys take a schema"},
		"badkey.yaml":   {"namespaces:\n  checkout:\n    _x: {type: integer, value: 1}\n", "namespace checkout: key _x: config key"},
		"badns.yaml":    {"namespaces:\n  Checkout: {}\n", `namespace "Checkout" must be`},
		"nullns.yaml":   {"namespaces:\n  checkout:\n", "namespace checkout: give its keys as a mapping"},
		"nons.yaml":     {"message: hello\n", "namespaces must map each namespace's name to its keys"},
		"top.yaml":      {"namespace: {}\n", `unknown field "namespace"`},
		"twice.yaml":    {"namespaces:\n  checkout:\n    n: {type: integer, value: 1}\n    n: {type: integer, value: 2}\n", "line 4 (namespaces.checkout.n): n is given twice"},
		"syntax.yaml":   {"namespaces:\n  checkout: [\n", "yaml: line 2"},
		"inf.yaml":      {"namespaces:\n  checkout:\n    f: {type: float, value: .inf}\n", "line 3 (namespaces.checkout.f.value): .inf is a number as YAML writes one, not as JSON does"},
		"octal.yaml":    {"namespaces:\n  checkout:\n    z: {type: json, value: {zip: 01234}}\n", "line 3 (namespaces.checkout.z.value.zip): 01234 is a number as YAML writes one, not as JSON does"},
		"syntax.json":   {"{\n  \"namespaces\": {\n    \"checkout\": {,}\n  }\n}", "line 3: invalid character ','"},
		"empty.yaml":    {"", "the file is empty"},
	} {
		configErr(t, url, name+": "+tc.want, "config", "apply", "--app", "shop", "--file", configFileAt(t, name, tc.text))
	}
	if v, _ := c.ConfigVersion(t.Context(), "shop", "checkout", 0); v.Number != 2 {
		t.Errorf("a malformed file wrote checkout version %d", v.Number)
	}
	configErr(t, url, "give the file with --file", "config", "apply", "--app", "shop")
}

// TestCLIConfigApplyConflict: a change made between apply's read and its
// write is refused rather than undone.
func TestCLIConfigApplyConflict(t *testing.T) {
	base, c := configApp(t)
	mustCLI(t, base, cliAdmin, "config", "set", "--app", "shop", "checkout", "retries=1", "--type", "integer")
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/apps/shop/config" {
			once.Do(func() {
				_, err := c.EditConfig(r.Context(), "shop", api.EditConfig{Message: "meanwhile",
					Namespaces: map[string]api.NamespaceEdit{"checkout": {Set: map[string]api.SetKey{"retries": {Value: json.RawMessage("7")}}}}})
				if err != nil {
					t.Error(err)
				}
			})
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	file := configFileAt(t, "config.yaml", "namespaces:\n  checkout:\n    retries: {type: integer, value: 2}\n    new_flow: {type: boolean, value: true}\n")
	out, err := mdsCLI(t, front.URL, cliAdmin, "config", "apply", "--app", "shop", "--file", file)
	if err == nil || !strings.Contains(err.Error(), "namespace checkout is at version 2 (by admin), not 1") {
		t.Fatalf("apply over a concurrent change: %v\n%s", err, out)
	}
	v, err := c.ConfigVersion(t.Context(), "shop", "checkout", 0)
	if err != nil || v.Number != 2 || string(v.Keys["retries"].Value) != "7" || len(v.Keys) != 1 {
		t.Errorf("the concurrent change was undone: %v %+v", err, v)
	}
	// Applied again, it is read anew.
	out = mustCLI(t, front.URL, cliAdmin, "config", "apply", "--app", "shop", "--file", file)
	configWant(t, "apply again", out, "checkout: version 3", "  ~ retries integer 7 → 2", "  [+] new_flow boolean true")
}

// TestCLIConfigHistoryDiffRollback: a namespace's versions listed with
// their messages, diffed, and an earlier one restored as a new version.
func TestCLIConfigHistoryDiffRollback(t *testing.T) {
	url, _ := configApp(t)
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "limit=0", "retries=1", "--type", "integer", "--message", "first")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "retries=2", "--message", "more\nretries")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "title=Sale", "--type", "string")
	mustCLI(t, url, cliAdmin, "config", "delete", "--app", "shop", "checkout", "limit")

	out := mustCLI(t, url, cliAdmin, "config", "diff", "--app", "shop", "checkout", "1", "3")
	configWant(t, "diff 1 3", out, "checkout: version 1 → 3", "  ~ retries integer 1 → 2", `  [+] title string "Sale"`)
	out = mustCLI(t, url, cliAdmin, "config", "diff", "--app", "shop", "checkout", "2")
	configWant(t, "diff 2", out, "checkout: version 2 → 4", "  - limit integer 0", `  [+] title string "Sale"`)
	var d api.ConfigDiff
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "config", "diff", "--app", "shop", "checkout", "3", "4", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.From != 3 || d.To != 4 || len(d.Keys) != 1 || d.Keys[0].Key != "limit" || d.Keys[0].To != nil {
		t.Errorf("diff --json: %+v", d)
	}
	out = mustCLI(t, url, cliAdmin, "config", "diff", "--app", "shop", "checkout", "4", "4")
	configWant(t, "diff 4 4", out, "checkout: versions 4 and 4 hold the same keys")
	configErr(t, url, `version "x"`, "config", "diff", "--app", "shop", "checkout", "x")
	configErr(t, url, "no version 9", "config", "diff", "--app", "shop", "checkout", "9")

	out = mustCLI(t, url, cliAdmin, "config", "rollback", "--app", "shop", "checkout", "--to", "1")
	configWant(t, "rollback", out, "checkout: version 5 restores version 1", "  [+] limit integer 0", "  ~ retries integer 2 → 1", `  - title string "Sale"`)
	configErr(t, url, "is at version 5 already", "config", "rollback", "--app", "shop", "checkout", "--to", "5")
	configErr(t, url, "no version 8", "config", "rollback", "--app", "shop", "checkout", "--to", "8")
	configErr(t, url, "give the version to restore with --to", "config", "rollback", "--app", "shop", "checkout")
	mustCLI(t, url, cliAdmin, "config", "rollback", "--app", "shop", "checkout", "--to", "3", "--message", "back to the sale")

	out = mustCLI(t, url, cliAdmin, "config", "history", "--app", "shop", "checkout")
	configWant(t, "history", out, "VERSION WHEN BY KEYS MESSAGE",
		`6 .* admin 3 \[restores v3\] back to the sale`,
		`5 .* admin 2 \[restores v1\] roll back to version 1`,
		"4 .* admin 2 ", "2 .* admin 2 more", "1 .* admin 2 first")
	out = mustCLI(t, url, cliAdmin, "config", "history", "--app", "shop", "checkout", "--limit", "2")
	if !strings.Contains(out, "more: run again with --after 5") || strings.Contains(out, "\n4 ") {
		t.Errorf("history --limit 2:\n%s", out)
	}
	configErr(t, url, "namespace nope has no versions", "config", "history", "--app", "shop", "nope")
}

// TestCLIConfigGray: a change released gray to some devices, which a
// device sees from its task; promoted, it becomes the namespace's next
// version for every device; another, stopped, leaves the namespace as
// it was.
func TestCLIConfigGray(t *testing.T) {
	url, c := configApp(t)
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "new_flow=false", "--type", "boolean")
	mustCLI(t, url, cliAdmin, "config", "set", "--app", "shop", "checkout", "title=Sale", "--type", "string")

	configErr(t, url, "a gray change needs an audience", "config", "gray", "--app", "shop", "checkout", "new_flow=true")
	configErr(t, url, "give keys to set", "config", "gray", "--app", "shop", "checkout", "--percent", "5")
	configErr(t, url, `checkout.new_flow is of type boolean, and "on" is not JSON`, "config", "gray", "--app", "shop", "checkout", "new_flow=on", "--percent", "5")

	out := mustCLI(t, url, cliAdmin, "config", "gray", "--app", "shop", "checkout", "new_flow=true", "--delete", "title",
		"--percent", "100", "--message", "try the new flow")
	m := regexp.MustCompile(`task +(\d+) \(live, gray\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gray printed:\n%s", out)
	}
	task := m[1]
	configWant(t, "gray", out, "rollout 100% by device",
		"promote mds task promote --app shop "+task+": it becomes checkout's next version, for every device",
		"abandon mds task stop --app shop "+task, "checkout: change over version 2",
		"  ~ new_flow boolean false → true", `  - title string "Sale"`)

	ex, err := c.Explain(t.Context(), "shop", api.Explain{Device: mds.Device{Platform: mds.Android, AppVersion: "1.0.0", DeviceID: "d1"}})
	if err != nil || len(ex.Config) != 1 || len(ex.Config[0].Keys) != 2 {
		t.Fatalf("explain: %v %+v", err, ex)
	}
	for _, k := range ex.Config[0].Keys {
		if k.TaskID == 0 || k.Key == "new_flow" && string(k.Value) != "true" || k.Key == "title" && !k.Deleted {
			t.Errorf("the device sees %+v", k)
		}
	}

	out = mustCLI(t, url, cliAdmin, "explain", "--app", "shop", "--device-id", "d1", "--platform", "android", "--app-version", "1.0.0")
	configWant(t, "explain", out, "configuration:", " checkout.new_flow = true from the gray change of task "+task,
		" checkout.title deleted by the gray change of task "+task)

	out = mustCLI(t, url, cliAdmin, "task", "promote", "--app", "shop", task)
	if !strings.Contains(out, "stopped") {
		t.Errorf("promote printed:\n%s", out)
	}
	v, err := c.ConfigVersion(t.Context(), "shop", "checkout", 0)
	if err != nil || v.Number != 3 || string(v.Keys["new_flow"].Value) != "true" || len(v.Keys) != 1 {
		t.Fatalf("after the promotion: %v %+v", err, v)
	}
	out = mustCLI(t, url, cliAdmin, "config", "history", "--app", "shop", "checkout")
	configWant(t, "history", out, `3 .* admin 1 \[promotes task `+task+`\] promote task `+task+`: try the new flow`)

	// With rules and a whitelist; stopped, it leaves the namespace as it
	// was.
	var wl mds.Whitelist
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "whitelist", "create", "--app", "shop", "testers", "--kind", "device", "--json")), &wl); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, url, cliAdmin, "whitelist", "add", "--app", "shop", strconv.FormatInt(wl.ID, 10), "d1")
	var gray api.Task
	if err := json.Unmarshal([]byte(mustCLI(t, url, cliAdmin, "config", "gray", "--app", "shop", "checkout", "banner={\"title\":\"Hi\"}", "--type", "json",
		"--whitelist", strconv.FormatInt(wl.ID, 10), "--rule", "os_version VERSION_GTE 12", "--json")), &gray); err != nil {
		t.Fatal(err)
	}
	if gray.Kind != mds.KindConfig || gray.Status != mds.StatusLive || gray.Stage != mds.StageGray || len(gray.Targeting.Whitelists) != 1 || len(gray.Targeting.Rules) != 1 {
		t.Errorf("gray --json: %+v", gray)
	}
	mustCLI(t, url, cliAdmin, "task", "stop", "--app", "shop", strconv.FormatInt(gray.ID, 10))
	if v, _ := c.ConfigVersion(t.Context(), "shop", "checkout", 0); v.Number != 3 {
		t.Errorf("a stopped change made version %d", v.Number)
	}
}
