package httpapi_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/httpapi"
)

type fullTask struct {
	ID        int64         `json:"id"`
	Status    string        `json:"status"`
	Stage     string        `json:"stage"`
	Targeting mds.Targeting `json:"targeting"`
}

func (e *testEnv) createWhitelist(app, name, kind, file string) *mds.Whitelist {
	e.t.Helper()
	var w mds.Whitelist
	e.call("POST", "/api/v1/apps/"+app+"/whitelists", e.admin, map[string]any{"name": name, "kind": kind}, 201, &w)
	resp, b := e.request("PUT", fmt.Sprintf("/api/v1/apps/%s/whitelists/%d/entries", app, w.ID), e.admin, strings.NewReader(file))
	if resp.StatusCode != 200 {
		e.t.Fatalf("upload whitelist: %d %s", resp.StatusCode, b)
	}
	return &w
}

func (e *testEnv) grayTask(app string, pkg int64, tg map[string]any) *fullTask {
	e.t.Helper()
	var t fullTask
	e.call("POST", "/api/v1/apps/"+app+"/tasks", e.admin, map[string]any{"package_id": pkg, "mode": "force", "targeting": tg, "release": true}, 201, &t)
	return &t
}

func (e *testEnv) offered(dev map[string]any) bool {
	e.t.Helper()
	_, a := e.check(dev)
	return a.Upgrade != nil
}

func with(dev map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range dev {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// TestGrayRelease walks a gray release: whitelist plus rule set plus a
// rollout, edited while running, then promoted.
func TestGrayRelease(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "url": "https://cdn.example.com/3.0.apk"})
	wl := e.createWhitelist("shop", "testers", "user", "user_id,name\n# the QA team\nalice,Alice\nbob,Bob\n\nalice,dup\nre:^qa-[0-9]+$\n")
	var got mds.Whitelist
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d", wl.ID), e.admin, nil, 200, &got)
	if got.Entries != 3 || got.Patterns != 1 {
		t.Fatalf("whitelist after upload: %+v; want alice, bob and one pattern", got)
	}
	var rs mds.RuleSet
	e.call("POST", "/api/v1/apps/shop/rule-sets", e.admin, map[string]any{"name": "modern android",
		"rules": []map[string]any{{"field": "os_version", "operator": "VERSION_GTE", "values": []string{"12"}}}}, 201, &rs)
	task := e.grayTask("shop", pkg.ID, map[string]any{"whitelists": []int64{wl.ID}, "rule_sets": []int64{rs.ID},
		"rollout": map[string]any{"percent": 0}})
	if task.Stage != "gray" || task.Status != "live" || task.Targeting.Salt == "" {
		t.Fatalf("gray task = %+v", task)
	}
	base := device(app, mds.Android, "2.0") // os_version 15
	for _, tc := range []struct {
		user, os string
		want     bool
	}{{"alice", "15", true}, {"qa-7", "15", true}, {"carol", "15", false}, {"alice", "11", false}} {
		if got := e.offered(with(base, "user_id", tc.user, "os_version", tc.os)); got != tc.want {
			t.Errorf("user %s on android %s: offered %v, want %v", tc.user, tc.os, got, tc.want)
		}
	}

	// Widen while running: 100% rollout; carol gets it at the next check.
	var edited fullTask
	e.call("PUT", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/targeting", task.ID), e.admin,
		map[string]any{"whitelists": []int64{wl.ID}, "rule_sets": []int64{rs.ID}, "rollout": map[string]any{"percent": 100}, "salt": "chosen"}, 200, &edited)
	if edited.Targeting.Salt != task.Targeting.Salt {
		t.Error("editing the targeting changed the salt, which would reshuffle the rollout")
	}
	if !e.offered(with(base, "user_id", "carol")) {
		t.Error("after raising the rollout to 100%, carol is not offered the task")
	}
	// Narrow the saved rule set: every task using it follows.
	e.call("PUT", fmt.Sprintf("/api/v1/apps/shop/rule-sets/%d", rs.ID), e.admin, map[string]any{"name": "modern android",
		"rules": []map[string]any{{"field": "os_version", "operator": "VERSION_GTE", "values": []string{"16"}}}}, 200, nil)
	if e.offered(with(base, "user_id", "carol")) {
		t.Error("after the rule set moved to android 16+, an android 15 device is still offered the task")
	}
	// Whitelist edits apply at the next check too.
	e.call("PATCH", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d/entries", wl.ID), e.admin, map[string]any{"add": []string{"dave"}, "remove": []string{"alice"}}, 200, nil)
	var page struct{ Entries []string }
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d/entries?limit=10", wl.ID), e.admin, nil, 200, &page)
	if fmt.Sprint(page.Entries) != "[bob dave re:^qa-[0-9]+$]" {
		t.Errorf("entries after edit: %v", page.Entries)
	}

	// Promote: the gates go, the rules stay.
	var promoted fullTask
	e.call("POST", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/promote", task.ID), e.admin, nil, 200, &promoted)
	if promoted.Stage != "official" {
		t.Fatalf("promoted task stage %s", promoted.Stage)
	}
	_, a := e.check(with(base, "user_id", "zed", "os_version", "16"))
	if a.Upgrade == nil || a.Upgrade.TaskID != task.ID {
		t.Errorf("after promotion an android 16 stranger is not offered the task: %+v", a.Upgrade)
	}
	if e.offered(with(base, "user_id", "bob", "os_version", "15")) {
		t.Error("after promotion the rules stopped applying")
	}
	resp, b := e.request("POST", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/promote", task.ID), e.admin, nil)
	e.wantProblem(resp, b, 409, "already official")

	// Promotion drops the gates, and shows it: the whitelist is no longer
	// in use, the rule set still is.
	if promoted.Targeting.HasGates() || len(promoted.Targeting.RuleSets) != 1 {
		t.Errorf("promoted targeting %+v; want the rule set and no gates", promoted.Targeting)
	}
	resp, b = e.request("DELETE", fmt.Sprintf("/api/v1/apps/shop/rule-sets/%d", rs.ID), e.admin, nil)
	e.wantProblem(resp, b, 409, "uses rule set")
	e.call("DELETE", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d", wl.ID), e.admin, nil, 204, nil)
}

func TestGrayValidation(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	other := e.createApp("blog", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "url": "https://cdn.example.com/3.0.apk"})
	var foreign mds.Whitelist
	e.call("POST", "/api/v1/apps/blog/whitelists", e.admin, map[string]any{"name": "x", "kind": "user"}, 201, &foreign)
	_ = other
	post := func(tg map[string]any) (*http.Response, []byte) {
		return e.request("POST", "/api/v1/apps/shop/tasks", e.admin, map[string]any{"package_id": pkg.ID, "mode": "force", "targeting": tg})
	}
	cases := []struct {
		tg     map[string]any
		status int
		detail string
	}{
		{map[string]any{"rules": []map[string]any{{"field": "os_version", "operator": "VERSION_GTE", "values": []string{"ten"}}}}, 400, "rule 1"},
		{map[string]any{"rules": []map[string]any{{"field": "shoe", "operator": "IN", "values": []string{"x"}}}}, 400, "field \"shoe\""},
		{map[string]any{"rollout": map[string]any{"percent": 12.345}}, 400, "two decimals"},
		{map[string]any{"rollout": map[string]any{"percent": 150}}, 400, "between 0 and 100"},
		{map[string]any{"window": map[string]any{"start": "2026-12-01T00:00:00Z", "end": "2026-11-01T00:00:00Z", "cap": 5}}, 400, "end after"},
		{map[string]any{"window": map[string]any{"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z", "cap": 0}}, 400, "cap"},
		{map[string]any{"whitelists": []int64{foreign.ID}}, 404, "whitelist"},
		{map[string]any{"rule_sets": []int64{999}}, 404, "rule set 999"},
		{map[string]any{"rollout": map[string]any{"ramp": []map[string]any{{"at": "2026-12-02T00:00:00Z", "percent": 5}, {"at": "2026-12-01T00:00:00Z", "percent": 50}}}}, 400, "must come after"},
	}
	for _, c := range cases {
		resp, b := post(c.tg)
		e.wantProblem(resp, b, c.status, c.detail)
	}
	resp, b := e.request("PUT", "/api/v1/apps/shop/whitelists/999/entries", e.admin, strings.NewReader("a\n"))
	e.wantProblem(resp, b, 404, "whitelist 999")
	var wl mds.Whitelist
	e.call("POST", "/api/v1/apps/shop/whitelists", e.admin, map[string]any{"name": "t", "kind": "device"}, 201, &wl)
	path := fmt.Sprintf("/api/v1/apps/shop/whitelists/%d/entries", wl.ID)
	e.call("PUT", path, e.admin, strings.NewReader("d1\nd2\n"), 200, nil)
	resp, b = e.request("PUT", path, e.admin, strings.NewReader("d3\nd4\nhas space\nd5\n"))
	e.wantProblem(resp, b, 400, "line 3")
	resp, b = e.request("PUT", path, e.admin, strings.NewReader("ok\nre:(broken\n"))
	e.wantProblem(resp, b, 400, "line 2")
	var kept struct{ Entries []string }
	e.call("GET", path, e.admin, nil, 200, &kept)
	if fmt.Sprint(kept.Entries) != "[d1 d2]" {
		t.Errorf("a refused file changed the whitelist: %v", kept.Entries)
	}
	viewer := e.createToken(e.admin, "viewer", grant("shop", mds.RoleViewer))
	resp, _ = e.request("PUT", path, viewer, strings.NewReader("x\n"))
	if resp.StatusCode != 403 {
		t.Errorf("viewer replacing a whitelist: %d, want 403", resp.StatusCode)
	}
	resp, _ = e.request("PUT", path, "", strings.NewReader("x\n"))
	if resp.StatusCode != 401 {
		t.Errorf("no token replacing a whitelist: %d, want 401", resp.StatusCode)
	}
}

// TestCappedWindowOverHTTP races concurrent checks at a window capped at
// 15 devices, then restarts the server: exactly 15 devices got the task,
// they keep it, and nobody else gets in.
func TestCappedWindowOverHTTP(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "url": "https://cdn.example.com/3.0.apk"})
	start := e.Now().Add(-time.Minute)
	e.grayTask("shop", pkg.ID, map[string]any{"window": map[string]any{"start": start, "end": start.Add(time.Hour), "cap": 15}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]bool{}
	for g := range 12 {
		wg.Go(func() {
			for i := range 10 {
				id := fmt.Sprintf("device-%d", (g*5+i)%40)
				if e.offered(with(device(app, mds.Android, "2.0"), "device_id", id)) {
					mu.Lock()
					got[id] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(got) != 15 {
		t.Fatalf("%d devices got the capped task, want exactly 15", len(got))
	}
	restarted := &testEnv{Server: e.Restart(t), t: t, admin: e.admin}
	for i := range 40 {
		id := fmt.Sprintf("device-%d", i)
		if restarted.offered(with(device(app, mds.Android, "2.0"), "device_id", id)) != got[id] {
			t.Errorf("after a restart, device %s: offered %v, want %v", id, !got[id], got[id])
		}
	}
	restarted.Advance(2 * time.Hour)
	for id := range got {
		if !restarted.offered(with(device(app, mds.Android, "2.0"), "device_id", id)) {
			t.Errorf("admitted device %s lost the task after the window closed", id)
		}
	}
}

func TestExplainAndPreview(t *testing.T) {
	e := newEnv(t, func(c *httpapi.Config) { c.Recent = delivery.NewRecent(1<<20, 100, 1) })
	app := e.createApp("shop", mds.Android)
	old := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.5", "url": "https://cdn.example.com/2.5.apk"})
	cur := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "url": "https://cdn.example.com/3.0.apk"})
	stable := e.grayTask("shop", old.ID, nil)
	gray := e.grayTask("shop", cur.ID, map[string]any{
		"rules":   []map[string]any{{"field": "city", "operator": "IN", "values": []string{"Shanghai"}}},
		"rollout": map[string]any{"percent": 0.01}})

	var ex struct {
		Revision int64
		Tasks    []delivery.Explanation
	}
	e.call("POST", "/api/v1/apps/shop/explain", e.admin, map[string]any{"device": map[string]any{
		"app_version": "2.0", "device_id": "device-1", "city": "Shanghai"}}, 200, &ex)
	if len(ex.Tasks) != 2 || ex.Tasks[0].TaskID != gray.ID || ex.Tasks[1].TaskID != stable.ID {
		t.Fatalf("explain = %+v", ex)
	}
	g := ex.Tasks[0]
	if last := g.Steps[len(g.Steps)-1]; g.Matched || last.What != "gray" || !strings.Contains(last.Detail, "bucket") {
		t.Errorf("gray task explanation: %+v", g)
	}
	if !ex.Tasks[1].Matched || !ex.Tasks[1].Chosen {
		t.Errorf("stable task explanation: %+v", ex.Tasks[1])
	}
	e.call("POST", "/api/v1/apps/shop/explain", e.admin, map[string]any{"device": map[string]any{
		"app_version": "2.0", "device_id": "device-1", "city": "Beijing"}}, 200, &ex)
	if r := ex.Tasks[0].Steps[1]; r.Passed || !strings.Contains(r.Detail, `city IN Shanghai; device has "Beijing"`) {
		t.Errorf("failing rule explanation: %+v", ex.Tasks[0].Steps)
	}
	resp, b := e.request("POST", "/api/v1/apps/shop/explain", e.admin, map[string]any{"device": map[string]any{"device_id": "x"}})
	if resp.StatusCode != 422 || !strings.Contains(string(b), "app_version") {
		t.Errorf("explain without app_version: %d %s", resp.StatusCode, b)
	}

	// Devices check in: 3 in Shanghai, 1 in Beijing.
	for i, city := range []string{"Shanghai", "Shanghai", "Beijing", "Shanghai"} {
		e.check(with(device(app, mds.Android, "2.0"), "city", city, "device_id", fmt.Sprintf("d%d", i)))
	}
	var pv struct {
		Sampled, Matched int
		Share            float64
	}
	e.call("POST", "/api/v1/apps/shop/preview", e.admin, map[string]any{
		"rules": []map[string]any{{"field": "city", "operator": "IN", "values": []string{"Shanghai"}}}}, 200, &pv)
	if pv.Sampled != 4 || pv.Matched != 3 || pv.Share != 0.75 {
		t.Errorf("preview = %+v; want 3 of 4", pv)
	}
	resp, b = e.request("POST", "/api/v1/apps/shop/preview", e.admin, map[string]any{
		"rules": []map[string]any{{"field": "city", "operator": "NUM_GT", "values": []string{"x"}}}})
	e.wantProblem(resp, b, 400, "not a number")
	other := e.createToken(e.admin, "blogger", grant("shop", mds.RoleViewer))
	e.call("POST", "/api/v1/apps/shop/preview", other, map[string]any{}, 200, nil)
}

// TestCIDRBehindProxy: a CIDR rule sees the device's address, taken from
// X-Forwarded-For only when the peer is a trusted proxy.
func TestCIDRBehindProxy(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		e := newEnv(t, func(c *httpapi.Config) {
			if trusted {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
		})
		app := e.createApp("shop", mds.Android)
		pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "3.0", "url": "https://cdn.example.com/3.0.apk"})
		e.grayTask("shop", pkg.ID, map[string]any{"rules": []map[string]any{{"field": "ip", "operator": "CIDR", "values": []string{"203.0.113.0/24"}}}})
		resp, a := e.check(device(app, mds.Android, "2.0"), "X-Forwarded-For", "198.51.100.1, 203.0.113.9")
		if resp.StatusCode != 200 || (a.Upgrade != nil) != trusted {
			t.Errorf("trusted proxy %v: offered %v", trusted, a.Upgrade != nil)
		}
		_, a = e.check(device(app, mds.Android, "2.0"), "X-Forwarded-For", "203.0.113.9, 127.0.0.1")
		if (a.Upgrade != nil) != trusted {
			t.Errorf("trusted proxy %v, proxy chain ending in a trusted hop: offered %v", trusted, a.Upgrade != nil)
		}
	}
}
