package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/httpapi"
)

// TestReleaseFlow walks the whole path for each upgrade mode: create an app,
// upload a package, create and release a task, and see a device get it.
func TestReleaseFlow(t *testing.T) {
	for _, mode := range []mds.UpgradeMode{mds.ModeSingle, mds.ModeMultiple, mds.ModeForce} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t)
			app := e.createApp("shop", mds.Android, mds.IOS)
			content := bytes.Repeat([]byte("apk!"), 100_000)
			sum := e.upload("shop", e.admin, content)
			pkg := e.createPackage("shop", e.admin, map[string]any{
				"platform": "android", "version": "2.1.0", "build": 210, "notes": "Faster checkout.\nFewer crashes.",
				"sha256": sum, "network": "wifi", "silent": true,
			})
			if pkg.Size != int64(len(content)) || pkg.Source != mds.SourceBlob {
				t.Fatalf("package = %+v", pkg)
			}
			task := e.createTask("shop", e.admin, pkg.ID, mode, false)
			if task.Status != "draft" {
				t.Fatalf("new task status %s, want draft", task.Status)
			}
			if _, a := e.check(device(app, mds.Android, "2.0.0")); a.Upgrade != nil {
				t.Fatal("a draft task reached a device")
			}
			e.act("shop", task.ID, mds.ActionRelease)

			_, a := e.check(device(app, mds.Android, "2.0.0"))
			u := a.Upgrade
			if u == nil {
				t.Fatal("released task did not reach the device")
			}
			if u.TaskID != task.ID || u.Version != "2.1.0" || u.Build != 210 || u.Mode != string(mode) || !u.Remind ||
				u.Notes != "Faster checkout.\nFewer crashes." || u.Size != int64(len(content)) || u.SHA256 != sum ||
				u.Network != "wifi" || !u.Silent || u.Source != "blob" {
				t.Errorf("answer = %+v", u)
			}
			if !strings.HasSuffix(u.URL, "/client/v1/blobs/"+sum) || u.PackageURL != u.URL {
				t.Errorf("download url %q / %q", u.URL, u.PackageURL)
			}
			// The URL in the answer really serves the package.
			resp, err := http.Get(u.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, content) {
				t.Error("download differs from the upload")
			}

			// A device that reminded its user an hour ago for this task.
			dev := device(app, mds.Android, "2.0.0")
			dev["last_reminded"] = map[string]any{"task_id": task.ID, "at": e.clock().Add(-time.Hour)}
			_, a = e.check(dev)
			wantRemind := mode != mds.ModeSingle
			if a.Upgrade.Remind != wantRemind {
				t.Errorf("reminded an hour ago: remind = %v, want %v", a.Upgrade.Remind, wantRemind)
			}
			if mode == mds.ModeSingle {
				if a.Upgrade.RemindIntervalSeconds != int64(mds.DefaultRemindInterval.Seconds()) {
					t.Errorf("remind interval %d s, want the 3-day default", a.Upgrade.RemindIntervalSeconds)
				}
				e.advance(mds.DefaultRemindInterval)
				if _, a = e.check(dev); !a.Upgrade.Remind {
					t.Error("single mode did not remind again once the interval passed")
				}
			}
			if _, a := e.check(device(app, mds.Android, "2.1.0")); a.Upgrade != nil {
				t.Error("a device on 2.1.0 was offered 2.1.0")
			}
		})
	}
}

func TestCustomRemindInterval(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	var task taskView
	e.call("POST", "/api/v1/apps/shop/tasks", e.admin,
		map[string]any{"package_id": pkg.ID, "mode": "single", "remind_interval_seconds": 3600, "release": true}, 201, &task)
	dev := device(app, mds.Android, "1.0")
	dev["last_reminded"] = map[string]any{"task_id": task.ID, "at": e.clock().Add(-59 * time.Minute)}
	if _, a := e.check(dev); a.Upgrade.Remind || a.Upgrade.RemindIntervalSeconds != 3600 {
		t.Errorf("59 minutes into a 1h interval: %+v", a.Upgrade)
	}
	e.advance(time.Minute)
	if _, a := e.check(dev); !a.Upgrade.Remind {
		t.Error("no reminder after the 1h interval")
	}
	resp, b := e.request("POST", "/api/v1/apps/shop/tasks", e.admin,
		map[string]any{"package_id": pkg.ID, "mode": "force", "remind_interval_seconds": 3600})
	e.wantProblem(resp, b, 400, "single-reminder")
}

func TestVersionRangesAndPlatforms(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android, mds.IOS)
	old := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "1.10.0",
		"url": "https://cdn.example.com/1.10.apk", "app_versions": []map[string]string{{"max": "1.9.9"}}})
	cur := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0.0",
		"url": "https://cdn.example.com/2.0.apk", "app_versions": []map[string]string{{"min": "1.10.0", "max": "1.99"}}})
	ios := e.createPackage("shop", e.admin, map[string]any{"platform": "ios", "version": "3.0",
		"source": "store", "url": "https://apps.apple.com/app/id123"})
	for _, p := range []int64{old.ID, cur.ID, ios.ID} {
		e.createTask("shop", e.admin, p, mds.ModeMultiple, true)
	}
	tests := []struct {
		platform mds.Platform
		version  string
		want     string // offered version, "" for none
	}{
		{mds.Android, "1.2.0", "1.10.0"}, // 2.0 needs 1.10 or later
		{mds.Android, "1.9.9", "1.10.0"},
		{mds.Android, "1.10.0", "2.0.0"}, // version-aware: 1.10 > 1.9
		{mds.Android, "1.12.3", "2.0.0"},
		{mds.Android, "2.0.0", ""},
		{mds.IOS, "1.0", "3.0"},
		{mds.IOS, "3.0", ""},
	}
	for _, tt := range tests {
		_, a := e.check(device(app, tt.platform, tt.version))
		got := ""
		if a.Upgrade != nil {
			got = a.Upgrade.Version
		}
		if got != tt.want {
			t.Errorf("%s %s: offered %q, want %q", tt.platform, tt.version, got, tt.want)
		}
	}
	_, a := e.check(device(app, mds.IOS, "1.0"))
	if a.Upgrade.URL != "https://apps.apple.com/app/id123" || a.Upgrade.Source != "store" || a.Upgrade.PackageURL != "" {
		t.Errorf("store link answer %+v", a.Upgrade)
	}
	// An app on android only refuses an iOS check, and a package for a
	// platform the app lacks is refused at creation.
	droid := e.createApp("droid", mds.Android)
	resp, b := e.request("POST", "/client/v1/check", "", device(droid, mds.IOS, "1.0"))
	e.wantProblem(resp, b, 400, `this app ships on android, not on ios`)
	resp, b = e.request("POST", "/api/v1/apps/droid/packages", e.admin,
		map[string]any{"platform": "ios", "version": "1.0", "url": "https://x.example.com/a.ipa"})
	e.wantProblem(resp, b, 400, "does not ship on ios")
}

// TestLifecycle checks that pause, resume and stop change the very next check.
func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	offered := func() bool {
		_, a := e.check(device(app, mds.Android, "1.0"))
		return a.Upgrade != nil
	}
	if !offered() {
		t.Fatal("live task not offered")
	}
	steps := []struct {
		action mds.Action
		status string
		want   bool
	}{{mds.ActionPause, "paused", false}, {mds.ActionResume, "live", true}, {mds.ActionStop, "stopped", false}}
	for _, s := range steps {
		if got := e.act("shop", task.ID, s.action); got.Status != s.status {
			t.Fatalf("%s: status %s, want %s", s.action, got.Status, s.status)
		}
		if got := offered(); got != s.want {
			t.Errorf("after %s: offered = %v, want %v", s.action, got, s.want)
		}
	}
	resp, b := e.request("POST", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/resume", task.ID), e.admin, nil)
	e.wantProblem(resp, b, 409, "stopped")
	resp, b = e.request("POST", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/explode", task.ID), e.admin, nil)
	if resp.StatusCode != 422 && resp.StatusCode != 400 {
		t.Errorf("unknown action: %d %s", resp.StatusCode, b)
	}

	var hist struct {
		Events []mds.TaskEvent `json:"events"`
	}
	e.call("GET", fmt.Sprintf("/api/v1/apps/shop/tasks/%d/history", task.ID), e.admin, nil, 200, &hist)
	var got []string
	for _, ev := range hist.Events {
		got = append(got, ev.Action)
		if ev.Actor != "admin" {
			t.Errorf("event %s by %q, want admin", ev.Action, ev.Actor)
		}
	}
	if fmt.Sprint(got) != "[created release pause resume stop]" {
		t.Errorf("history %v", got)
	}
	var list struct {
		Tasks []taskView `json:"tasks"`
	}
	e.call("GET", "/api/v1/apps/shop/tasks?status=stopped", e.admin, nil, 200, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != task.ID {
		t.Errorf("stopped tasks = %+v", list.Tasks)
	}
}

func TestCheckETag(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeMultiple, true)
	dev := device(app, mds.Android, "1.0")
	resp, _ := e.check(dev)
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, a := e.check(dev, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || a != nil {
		t.Fatalf("repeat check with If-None-Match: %d, want 304", resp.StatusCode)
	}
	if resp.Header.Get("ETag") != etag {
		t.Error("304 without the ETag")
	}
	if resp, _ := e.check(dev, "If-None-Match", `"something-else"`); resp.StatusCode != 200 {
		t.Errorf("stale ETag answered %d, want 200", resp.StatusCode)
	}
	if resp, _ := e.check(dev, "If-None-Match", `*`); resp.StatusCode != 200 {
		t.Errorf("If-None-Match: * answered %d, want 200", resp.StatusCode)
	}
	if resp, _ := e.check(dev, "If-None-Match", `"x", W/`+etag); resp.StatusCode != 304 {
		t.Errorf("weak ETag in a list answered %d, want 304", resp.StatusCode)
	}
	e.act("shop", task.ID, mds.ActionPause)
	resp, a = e.check(dev, "If-None-Match", etag)
	if resp.StatusCode != 200 || a.Upgrade != nil || resp.Header.Get("ETag") == etag {
		t.Errorf("after pause: %d, upgrade %v, etag %s (was %s)", resp.StatusCode, a, resp.Header.Get("ETag"), etag)
	}
}

func TestCheckRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	post := func(body string) (*http.Response, []byte) {
		return e.request("POST", "/client/v1/check", "", strings.NewReader(body))
	}
	resp, b := e.request("POST", "/client/v1/check", "", device(&mds.App{Key: "ak_unknown"}, mds.Android, "1.0"))
	e.wantProblem(resp, b, 404, "unknown app_key")
	resp, b = post(`{"app_key": "x", "platform": `)
	e.wantProblem(resp, b, 400, "not valid JSON")
	resp, b = post(``)
	e.wantProblem(resp, b, 400, "empty")
	resp, b = post(`{"app_key": 7}`)
	e.wantProblem(resp, b, 400, "field app_key must be a JSON string")
	resp, b = post(`{"platform": ["android"]}`)
	e.wantProblem(resp, b, 400, "field platform must be a JSON string, not a JSON array")
	resp, b = post(`[1]`)
	e.wantProblem(resp, b, 400, "must be a JSON object")
	if bytes.Contains(b, []byte("mds.")) {
		t.Errorf("an error names a Go type: %s", b)
	}
	resp, b = post(`{} {}`)
	e.wantProblem(resp, b, 400, "more than one")
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"1.0","device_id":"d"}}`)
	e.wantProblem(resp, b, 400, "more than one")
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"1.0","device_id":"d"} garbage`)
	e.wantProblem(resp, b, 400, "more than one")
	for _, v := range []string{"1..4", "1.-1.0", "1.", ".1"} {
		resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"` + v + `","device_id":"d"}`)
		e.wantProblem(resp, b, 400, "app_version")
	}
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","device_id":"d"}`)
	e.wantProblem(resp, b, 400, "app_version")
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"symbian","app_version":"1","device_id":"d"}`)
	e.wantProblem(resp, b, 400, "symbian")
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"1.0"}`)
	e.wantProblem(resp, b, 400, "device_id")
	// A network the server does not know costs the device nothing: it is
	// "unknown" to rules.
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"1.0","device_id":"d","network":"carrier-pigeon"}`)
	if resp.StatusCode != 200 {
		t.Errorf("an unknown network: %d %s, want 200", resp.StatusCode, b)
	}
	resp, b = post(`{"app_key":"` + app.Key + `","platform":"android","app_version":"1.0","device_id":"` + strings.Repeat("d", 100_000) + `"}`)
	e.wantProblem(resp, b, 413, "larger than")
	resp, b = e.request("GET", "/client/v1/check", "", nil)
	e.wantProblem(resp, b, http.StatusMethodNotAllowed, "use POST")
	if allow := resp.Header.Get("Allow"); allow != "POST" {
		t.Errorf("Allow %q, want POST", allow)
	}
	resp, _ = e.request("POST", "/client/v1/blobs/"+strings.Repeat("0", 64), "", nil)
	if allow := resp.Header.Get("Allow"); resp.StatusCode != 405 || allow != "GET, HEAD" {
		t.Errorf("POST to a blob: %d, Allow %q; want 405 and GET, HEAD", resp.StatusCode, allow)
	}
	resp, b = e.request("GET", "/client/v2/check", "", nil)
	e.wantProblem(resp, b, http.StatusNotFound, "no such endpoint")
}

func TestBlobDownload(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(i * 31)
	}
	sum := e.upload("shop", e.admin, content)
	h := sha256.Sum256(content)
	if sum != hex.EncodeToString(h[:]) {
		t.Fatalf("upload returned sha256 %s, want %x", sum, h)
	}
	path := "/client/v1/blobs/" + sum
	resp, b := e.request("GET", path, "", nil)
	e.wantProblem(resp, b, 404, "no released package")
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.0", "sha256": sum})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)

	resp, b = e.request("GET", path, "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, content) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(b))
	}
	for k, want := range map[string]string{
		"Cache-Control": "public, max-age=3600, must-revalidate", "ETag": `"` + sum + `"`,
		"Accept-Ranges": "bytes", "Content-Length": "1048576",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Resume: a client that has the first 1000 bytes asks for the rest,
	// guarded by If-Range so that a changed file would restart instead.
	resp, b = e.request("GET", path, "", nil, "Range", "bytes=1000-", "If-Range", `"`+sum+`"`)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, content[1000:]) {
		t.Fatalf("resume: %d, %d bytes", resp.StatusCode, len(b))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 1000-1048575/1048576" {
		t.Errorf("Content-Range %q", cr)
	}
	resp, b = e.request("GET", path, "", nil, "Range", "bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, content[10:20]) {
		t.Errorf("range 10-19: %d %q", resp.StatusCode, b)
	}
	// Ranges that cannot be served are problems that say why, with the size.
	for _, r := range []string{"bytes=2000000-", "bytes=-0", "bytes=5-2", "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17"} {
		resp, b = e.request("GET", path, "", nil, "Range", r)
		e.wantProblem(resp, b, http.StatusRequestedRangeNotSatisfiable, "")
		if cr := resp.Header.Get("Content-Range"); cr != "bytes */1048576" {
			t.Errorf("%s: Content-Range %q, want bytes */1048576", r, cr)
		}
	}
	resp, b = e.request("HEAD", path, "", nil)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(content)) {
		t.Errorf("HEAD: %d, body %d bytes, length %d", resp.StatusCode, len(b), resp.ContentLength)
	}
	resp, _ = e.request("GET", path, "", nil, "If-None-Match", `"`+sum+`"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp, b = e.request("GET", "/client/v1/blobs/"+strings.Repeat("0", 64), "", nil)
	e.wantProblem(resp, b, 404, "no released package")
	e.act("shop", task.ID, mds.ActionStop)
	resp, b = e.request("GET", path, "", nil)
	e.wantProblem(resp, b, 404, "no released package")
	// The uploader can still see that the server holds it.
	var held struct{ SHA256 string }
	e.call("GET", "/api/v1/apps/shop/blobs/"+sum, e.admin, nil, 200, &held)
	resp, b = e.request("GET", "/api/v1/apps/shop/blobs/"+strings.Repeat("0", 64), e.admin, nil)
	e.wantProblem(resp, b, 404, "upload it first")
	resp, b = e.request("GET", "/client/v1/blobs/..%2f..%2fetc%2fpasswd", "", nil)
	e.wantProblem(resp, b, 404, "not a clean path")
	resp, b = e.request("GET", "/client/v1/blobs/ABC", "", nil)
	e.wantProblem(resp, b, 400, "not a sha256")
}

func TestEnterpriseInstall(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.IOS)
	sum := e.upload("shop", e.admin, []byte("an ipa"))
	pkg := e.createPackage("shop", e.admin, map[string]any{"platform": "ios", "version": "4.2", "build": 42,
		"sha256": sum, "enterprise": true, "bundle_id": "com.example.shop", "title": "Shop <Beta> & Co"})
	task := e.createTask("shop", e.admin, pkg.ID, mds.ModeForce, true)
	_, a := e.check(device(app, mds.IOS, "4.0"))
	u, err := url.Parse(a.Upgrade.URL)
	if err != nil || u.Scheme != "itms-services" || u.Query().Get("action") != "download-manifest" {
		t.Fatalf("install link %q", a.Upgrade.URL)
	}
	manifestURL := u.Query().Get("url")
	if manifestURL != fmt.Sprintf("%s/client/v1/manifests/%s/%d.plist", e.URL, app.Key, pkg.ID) {
		t.Fatalf("manifest url %q", manifestURL)
	}
	resp, err := http.Get(manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(body)
	for _, want := range []string{
		"<string>software-package</string>", "<string>" + e.URL + "/client/v1/blobs/" + sum + "</string>",
		"<key>bundle-identifier</key>\n\t\t\t\t<string>com.example.shop</string>",
		"<key>bundle-version</key>\n\t\t\t\t<string>4.2</string>", "<string>Shop &lt;Beta&gt; &amp; Co</string>",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest lacks %q:\n%s", want, m)
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/xml" {
		t.Errorf("manifest Content-Type %q", ct)
	}
	other := e.createApp("other", mds.IOS)
	resp, _ = e.request("GET", fmt.Sprintf("/client/v1/manifests/%s/%d.plist", other.Key, pkg.ID), "", nil)
	if resp.StatusCode != 404 {
		t.Errorf("manifest under another app's key: %d, want 404", resp.StatusCode)
	}
	e.act("shop", task.ID, mds.ActionStop)
	resp, _ = e.request("GET", strings.TrimPrefix(manifestURL, e.URL), "", nil)
	if resp.StatusCode != 404 {
		t.Errorf("manifest of a stopped task: %d, want 404", resp.StatusCode)
	}
	resp, _ = e.request("GET", "/client/v1/manifests/"+app.Key+"/abc.plist", "", nil)
	if resp.StatusCode != 404 {
		t.Errorf("malformed manifest name: %d, want 404", resp.StatusCode)
	}
}

// TestSlowBodies checks that a client trickling a body is cut off: a check
// body must arrive within the body timeout, and an upload may not stall
// longer than it, leaving nothing behind.
func TestSlowBodies(t *testing.T) {
	e := newEnv(t, func(c *httpapi.Config) { c.BodyTimeout = 300 * time.Millisecond })
	e.createApp("shop", mds.Android)
	for _, tc := range []struct{ name, head string }{
		{"check", "POST /client/v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"app_key\":"},
		{"upload", "POST /api/v1/apps/shop/blobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + e.admin +
			"\r\nContent-Length: 1000000\r\n\r\n" + strings.Repeat("x", 5000)},
	} {
		conn, err := net.Dial("tcp", e.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(tc.head)); err != nil {
			t.Fatal(err)
		}
		// Then stall. The server must give up on its own and close; a
		// check hears why, as a problem document.
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		raw, _ := io.ReadAll(conn)
		conn.Close()
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("%s: a stalled body held the connection for %v", tc.name, waited)
		}
		if tc.name == "check" {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
			if err != nil {
				t.Fatalf("check: no answer to a stalled body: %v (%q)", err, raw)
			}
			body, _ := io.ReadAll(resp.Body)
			e.wantProblem(resp, body, http.StatusRequestTimeout, "did not arrive")
			if bytes.Contains(raw, []byte("127.0.0.1")) {
				t.Errorf("the answer names a socket address: %s", raw)
			}
		}
	}
	if n := countFiles(t, e.Blobs.TempDir()); n != 0 {
		t.Errorf("%d files left in the upload temp dir after a stalled upload", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Name() != ".lock" {
			n++
		}
	}
	return n
}
