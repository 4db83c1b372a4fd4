package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/delivery"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/signing"
)

// TestBlobsBelongToTheirApp: content is stored once, but only the app that
// uploaded a file can see it, name it in a package, and so release it.
func TestBlobsBelongToTheirApp(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	blog := e.createApp("blog", mds.Android)
	blogAdmin := e.createToken(e.admin, "blog-admin", grant("blog", mds.RoleAdmin))
	secret := []byte("shop's unreleased build")
	sum := e.upload("shop", e.admin, secret)

	resp, b := e.request("GET", "/api/v1/apps/blog/blobs/"+sum, blogAdmin, nil)
	e.wantProblem(resp, b, 404, "upload it first")
	resp, b = e.request("POST", "/api/v1/apps/blog/packages", blogAdmin, map[string]any{"platform": "android", "version": "2.0", "sha256": sum})
	e.wantProblem(resp, b, 400, "upload it first")
	if resp, _ := e.request("GET", "/client/v1/blobs/"+sum, "", nil); resp.StatusCode != 404 {
		t.Fatalf("shop's unreleased file is downloadable: %d", resp.StatusCode)
	}
	// Having the bytes is what makes a file one's own.
	if got := e.upload("blog", blogAdmin, secret); got != sum {
		t.Fatalf("same content, another digest: %s", got)
	}
	pkg := e.createPackage("blog", blogAdmin, map[string]any{"platform": "android", "version": "2.0", "sha256": sum})
	e.createTask("blog", blogAdmin, pkg.ID, mds.ModeForce, true)
	if _, a := e.check(device(blog, mds.Android, "1.0")); a.Upgrade == nil || a.Upgrade.SHA256 != sum {
		t.Errorf("blog's own upload is not offered: %+v", a.Upgrade)
	}
}

// TestOfficialTasksTakeNoGates: what a task shows is what is in force.
func TestOfficialTasksTakeNoGates(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	official := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	path := fmt.Sprintf("/api/v1/apps/shop/tasks/%d/targeting", official.ID)
	resp, b := e.request("PUT", path, e.admin, map[string]any{"rollout": map[string]any{"percent": 5}})
	e.wantProblem(resp, b, 400, "is official")
	resp, b = e.request("POST", "/api/v1/apps/shop/tasks", e.admin, map[string]any{"package_id": pkg.ID, "mode": "force",
		"targeting": map[string]any{"rollout": map[string]any{"percent": 5, "ramp": []map[string]any{{"at": "2026-12-01T00:00:00Z", "percent": 10}}}}})
	e.wantProblem(resp, b, 400, "not both")
}

// TestCreateReleasedTaskIsOneStep: a task released as it is created has
// the history of a release, and a refused one leaves nothing to retry into
// a duplicate.
func TestCreateReleasedTaskIsOneStep(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	var h struct{ Events []mds.TaskEvent }
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/history", task.ID), e.admin, nil, 200, &h)
	if len(h.Events) != 2 || h.Events[0].Action != "created" || h.Events[1].Action != "release" || h.Events[1].Status != mds.StatusLive {
		t.Errorf("history of a task created released: %+v", h.Events)
	}
	resp, b := e.request("POST", "/api/v1/apps/shop/tasks", e.admin, map[string]any{"package_id": pkg.ID, "mode": "force", "release": true,
		"targeting": map[string]any{"whitelists": []int{77}}})
	e.wantProblem(resp, b, 404, "whitelist 77")
	var list struct{ Tasks []taskView }
	e.call("GET", "/api/v1/apps/shop/tasks", e.admin, nil, 200, &list)
	if len(list.Tasks) != 1 {
		t.Errorf("%d tasks after a refused create; want only the first", len(list.Tasks))
	}
}

// TestETagFollowsTheAnswer: a write that does not change what a device is
// told leaves its ETag, and its 304, alone; one that does changes it.
func TestETagFollowsTheAnswer(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android)
	e.createApp("blog", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	resp, _ := e.check(device(shop, mds.Android, "1.0"))
	etag := resp.Header.Get("ETag")
	other := e.createPackage("blog", e.admin, map[string]any{"platform": "android", "version": "9.0", "url": "https://cdn.example.com/b.apk"})
	e.createTask("blog", e.admin, other.ID, mds.ModeForce, true)
	if resp, _ := e.check(device(shop, mds.Android, "1.0"), "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("another app's release changed shop's answer: %d", resp.StatusCode)
	}
	e.act("shop", task.ID, mds.ActionPause)
	resp, a := e.check(device(shop, mds.Android, "1.0"), "If-None-Match", etag)
	if resp.StatusCode != 200 || a.Upgrade != nil || resp.Header.Get("ETag") == etag {
		t.Errorf("after a pause: %d, %+v, etag %s", resp.StatusCode, a, resp.Header.Get("ETag"))
	}
}

// TestOneClock: the store stamps what it keeps with the server's clock.
func TestOneClock(t *testing.T) {
	e := newEnv(t)
	a := e.createApp("shop", mds.Android)
	if !a.CreatedAt.Equal(e.clock()) {
		t.Errorf("app created at %v; the server's clock says %v", a.CreatedAt, e.clock())
	}
	e.advance(time.Hour)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	if !pkg.CreatedAt.Equal(e.clock()) {
		t.Errorf("package created at %v; the server's clock says %v", pkg.CreatedAt, e.clock())
	}
}

// TestRequestsParseStrictly: IDs are digits, the bearer scheme is any case,
// URLs are bounded.
func TestRequestsParseStrictly(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	var w mds.Whitelist
	e.call("POST", "/api/v1/apps/shop/whitelists", e.admin, map[string]any{"name": "w", "kind": "user"}, 201, &w)
	resp, b := e.request("PUT", fmt.Sprintf("/api/v1/apps/shop/whitelists/%dx/entries", w.ID), e.admin, strings.NewReader("alice\n"))
	e.wantProblem(resp, b, 404, "not found")
	resp, b = e.request("PUT", fmt.Sprintf("/api/v1/apps/shop/whitelists/+%d/entries", w.ID), e.admin, strings.NewReader("alice\n"))
	e.wantProblem(resp, b, 404, "not found")
	if got, _ := e.Store.FindWhitelist(t.Context(), 1, w.ID); got.Entries != 0 {
		t.Errorf("a malformed ID replaced whitelist %d", w.ID)
	}
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		req, _ := http.NewRequest("GET", e.URL+"/api/v1/apps", nil)
		req.Header.Set("Authorization", scheme+" "+e.admin)
		resp, err := e.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Authorization: %s …: %d", scheme, resp.StatusCode)
		}
	}
	resp, b = e.request("POST", "/api/v1/apps/shop/packages", e.admin,
		map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/" + strings.Repeat("a", 5000)})
	if resp.StatusCode != 422 && resp.StatusCode != 400 {
		t.Errorf("a 5 KB URL: %d %s", resp.StatusCode, b)
	}
}

// TestEmptyWhitelistFile: an empty file does not silently empty a live
// list; asked to, it does.
func TestEmptyWhitelistFile(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	w := e.createWhitelist("shop", "testers", "user", "alice\nbob\n")
	path := fmt.Sprintf("/api/v1/apps/shop/whitelists/%d/entries", w.ID)
	for _, file := range []string{"", "# only a comment\n\n", "user_id\n"} {
		resp, b := e.request("PUT", path, e.admin, strings.NewReader(file))
		e.wantProblem(resp, b, 400, "allow_empty=true")
	}
	var got mds.Whitelist
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d", w.ID), e.admin, nil, 200, &got)
	if got.Entries != 2 {
		t.Fatalf("refused empty files changed the whitelist: %+v", got)
	}
	resp, b := e.request("PUT", path+"?allow_empty=true", e.admin, strings.NewReader(""))
	if resp.StatusCode != 200 {
		t.Fatalf("an empty file asked for: %d %s", resp.StatusCode, b)
	}
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/whitelists/%d", w.ID), e.admin, nil, 200, &got)
	if got.Entries != 0 {
		t.Errorf("allow_empty did not empty the whitelist: %+v", got)
	}
	resp, b = e.request("PUT", path+"?allow_empty=maybe", e.admin, strings.NewReader(""))
	e.wantProblem(resp, b, 400, "true or false")
}

// TestSeparateListeners: the device handler serves devices only, the
// management handler management only; one address serves both.
func TestSeparateListeners(t *testing.T) {
	e := newEnv(t)
	live := delivery.NewLive(e.Store)
	if err := live.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httpapi.New(httpapi.Config{Store: e.Store, Blobs: e.Blobs, Live: live, AnswerKeys: []*signing.PrivateKey{e.AnswerKey},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(srv.Close)
	cases := []struct {
		h              http.Handler
		path           string
		device, manage bool
	}{
		{srv.DeviceHandler(), "/client/v1/check", true, false},
		{srv.DeviceHandler(), "/api/v1/apps", false, false},
		{srv.DeviceHandler(), "/metrics", false, false},
		{srv.DeviceHandler(), "/healthz", true, true},
		{srv.ManagementHandler(), "/client/v1/check", false, false},
		{srv.ManagementHandler(), "/api/v1/apps", false, true},
		{srv.ManagementHandler(), "/metrics", false, true},
	}
	for _, c := range cases {
		method := "GET"
		if strings.HasPrefix(c.path, "/client/") {
			method = "POST"
		}
		req, _ := http.NewRequest(method, c.path, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer "+e.admin)
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		served := rec.Code != 404
		if want := c.device || c.manage; served != want {
			t.Errorf("%s: status %d, served %v; want served %v", c.path, rec.Code, served, want)
		}
	}
}

// TestNetHTTPErrorsAreProblems: the answers net/http gives before any
// handler come out as problem documents too.
func TestNetHTTPErrorsAreProblems(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: e.Config.Handler, MaxHeaderBytes: httpapi.MaxHeaderBytes}
	go hs.Serve(httpapi.WrapListener(ln))
	t.Cleanup(func() { hs.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 200<<10))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	e.wantProblem(resp, body, http.StatusRequestHeaderFieldsTooLarge, "headers")
}

// TestCleanPaths: a path in unclean form is a 404 naming the clean one, not
// a redirect that would turn a POST into a GET.
func TestCleanPaths(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("POST", e.URL+"/client/v1//check", bytes.NewReader([]byte(`{}`)))
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e.wantProblem(resp, b, 404, "/client/v1/check")
}

// TestAppOperations: rename, platforms, key rotation and deletion, each
// refused while it would break something in use.
func TestAppOperations(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android, mds.IOS)
	shopAdmin := e.createToken(e.admin, "shop-admin", grant("shop", mds.RoleAdmin))
	releaser := e.createToken(e.admin, "shop-releaser", grant("shop", mds.RoleReleaser))
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)

	resp, b := e.request("PATCH", "/api/v1/apps/shop", releaser, map[string]any{"name": "Shop!"})
	e.wantProblem(resp, b, 403, "admin role")
	var a mds.App
	e.call("PATCH", "/api/v1/apps/shop", shopAdmin, map[string]any{"name": "Shop Two", "slug": "shop2"}, 200, &a)
	if a.Slug != "shop2" || a.Name != "Shop Two" || a.Key != shop.Key {
		t.Fatalf("renamed app %+v", a)
	}
	resp, b = e.request("PATCH", "/api/v1/apps/shop2", shopAdmin, map[string]any{"platforms": []string{"ios"}})
	e.wantProblem(resp, b, 409, "stop it before dropping")
	resp, b = e.request("PATCH", "/api/v1/apps/shop2", shopAdmin, map[string]any{"name": "bad\u202ename"})
	e.wantProblem(resp, b, 400, "U+202E")

	// Rotation: both keys answer until the old one is retired.
	e.call("POST", "/api/v1/apps/shop2/key", shopAdmin, nil, 200, &a)
	if a.Key == shop.Key || a.PreviousKey != shop.Key {
		t.Fatalf("after rotation %+v", a)
	}
	for _, key := range []string{shop.Key, a.Key} {
		if _, ans := e.check(device(&mds.App{Key: key}, mds.Android, "1.0")); ans.Upgrade == nil || ans.Upgrade.TaskID != task.ID {
			t.Errorf("key %s after rotation: %+v", key, ans.Upgrade)
		}
	}
	// Previews count the devices of either key: the sample is the app's.
	var preview struct{ Sampled int }
	e.call("POST", "/api/v1/apps/shop2/preview", shopAdmin, map[string]any{}, 200, &preview)
	if preview.Sampled != 2 {
		t.Errorf("preview after checks on both keys sampled %d, want 2", preview.Sampled)
	}
	resp, b = e.request("POST", "/api/v1/apps/shop2/key", shopAdmin, nil)
	e.wantProblem(resp, b, 409, "retire it first")
	e.call("DELETE", "/api/v1/apps/shop2/key/previous", shopAdmin, nil, 200, &a)
	resp, b = e.request("POST", "/client/v1/check", "", device(shop, mds.Android, "1.0"))
	e.wantProblem(resp, b, 404, "unknown app_key")

	// Deletion: an admin's, and only once nothing runs.
	resp, b = e.request("DELETE", "/api/v1/apps/shop2", shopAdmin, nil)
	e.wantProblem(resp, b, 403, "admin token")
	resp, b = e.request("DELETE", "/api/v1/apps/shop2", e.admin, nil)
	e.wantProblem(resp, b, 409, "stop every task")
	e.act("shop2", task.ID, mds.ActionStop)
	e.call("DELETE", "/api/v1/apps/shop2", e.admin, nil, 204, nil)
	resp, b = e.request("GET", "/api/v1/apps/shop2", e.admin, nil)
	e.wantProblem(resp, b, 404, "not found")
}

// TestDeleteTasksAndPackages: drafts and stopped tasks go with their
// history; a package goes once no task names it.
func TestDeleteTasksAndPackages(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	taskPath := fmt.Sprintf("/api/v1/apps/shop/tasks/%d", task.ID)
	pkgPath := fmt.Sprintf("/api/v1/apps/shop/packages/%d", pkg.ID)
	resp, b := e.request("DELETE", taskPath, e.admin, nil)
	e.wantProblem(resp, b, 409, "stop it")
	resp, b = e.request("DELETE", pkgPath, e.admin, nil)
	e.wantProblem(resp, b, 409, "delete the task first")
	e.act("shop", task.ID, mds.ActionStop)
	e.call("DELETE", taskPath, e.admin, nil, 204, nil)
	e.call("DELETE", pkgPath, e.admin, nil, 204, nil)
	resp, b = e.request("GET", pkgPath, e.admin, nil)
	e.wantProblem(resp, b, 404, "not found")
}

// TestListsArePaged: every list takes limit and after, and says where the
// next page starts.
func TestListsArePaged(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	for _, v := range []string{"1.0", "2.0", "3.0"} {
		e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": v, "url": "https://cdn.example.com/" + v})
	}
	var page struct {
		Packages []struct{ ID int64 }
		Next     string
	}
	e.call("GET", "/api/v1/apps/shop/packages?limit=2", e.admin, nil, 200, &page)
	if len(page.Packages) != 2 || page.Next == "" {
		t.Fatalf("first page %+v", page)
	}
	after := page.Next
	page.Packages, page.Next = nil, ""
	e.call("GET", "/api/v1/apps/shop/packages?limit=2&after="+after, e.admin, nil, 200, &page)
	if len(page.Packages) != 1 || page.Next != "" {
		t.Errorf("last page %+v", page)
	}
	resp, b := e.request("GET", "/api/v1/apps/shop/packages?after=zz", e.admin, nil)
	e.wantProblem(resp, b, 400, "cursor")
	for _, path := range []string{"/api/v1/apps?limit=1", "/api/v1/apps/shop/tasks?limit=1", "/api/v1/apps/shop/rule-sets?limit=1",
		"/api/v1/apps/shop/whitelists?limit=1", "/api/v1/tokens?limit=1"} {
		if resp, b := e.request("GET", path, e.admin, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	var apps struct {
		Apps []mds.App
		Next string
	}
	e.createApp("blog", mds.Android)
	e.call("GET", "/api/v1/apps?limit=1", e.admin, nil, 200, &apps)
	if len(apps.Apps) != 1 || apps.Apps[0].Slug != "blog" || apps.Next != "blog" {
		t.Errorf("apps page %+v", apps)
	}
}

// TestNamesInAnyScript: names and channels take Unicode letters, and a
// device's channel in Chinese matches a package's; control and
// bidirectional-override characters are refused.
func TestNamesInAnyScript(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	var w mds.Whitelist
	e.call("POST", "/api/v1/apps/shop/whitelists", e.admin, map[string]any{"name": "测试名单", "kind": "user"}, 201, &w)
	e.call("POST", "/api/v1/apps/shop/rule-sets", e.admin, map[string]any{"name": "华东 wifi",
		"rules": []map[string]any{{"field": "network", "operator": "IN", "values": []string{"wifi"}}}}, 201, nil)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "channel": "华为", "url": "https://cdn.example.com/a.apk"})
	e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	if !e.offered(with(device(app, mds.Android, "1.0"), "channel", "华为")) || e.offered(with(device(app, mds.Android, "1.0"), "channel", "xiaomi")) {
		t.Error("a package for channel 华为 does not reach exactly its devices")
	}
	for _, bad := range []map[string]any{
		{"platform": "android", "version": "2.1", "url": "https://cdn.example.com/b.apk", "notes": "fixed\u202egnp.exe"},
		{"platform": "android", "version": "2.1", "url": "https://cdn.example.com/b.apk", "notes": "bell\x07"},
		{"platform": "android", "version": "2.1", "url": "https://cdn.example.com/b.apk", "channel": "a b"},
	} {
		resp, b := e.request("POST", "/api/v1/apps/shop/packages", e.admin, bad)
		e.wantProblem(resp, b, 400, "")
	}
	resp, b := e.request("POST", "/api/v1/apps/shop/whitelists", e.admin, map[string]any{"name": "evil\u2066name", "kind": "user"})
	e.wantProblem(resp, b, 400, "U+2066")
	// Multi-line notes stay welcome.
	e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.2", "url": "https://cdn.example.com/c.apk", "notes": "Faster.\n\tFewer crashes."})
}
