package httpapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/httpapi/httpapitest"
	"github.com/mds-dev/mds/signing"
)

// testEnv wraps a test server with request helpers.
type testEnv struct {
	*httpapitest.Server
	t     testing.TB
	admin string
}

type envOption = func(*httpapi.Config)

func withMaxUpload(n int64) envOption { return func(c *httpapi.Config) { c.MaxUpload = n } }

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	s := httpapitest.Start(t, opts...)
	return &testEnv{Server: s, t: t, admin: httpapitest.AdminToken}
}

func (e *testEnv) clock() time.Time { return e.Now() }

func (e *testEnv) advance(d time.Duration) { e.Advance(d) }

// request sends body (JSON-encoded unless it is an io.Reader) and returns
// the response with its body read.
func (e *testEnv) request(method, path, token string, body any, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// call is request that insists on a status and decodes the JSON answer into out.
func (e *testEnv) call(method, path, token string, body any, want int, out any) {
	e.t.Helper()
	resp, b := e.request(method, path, token, body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// wantProblem asserts an RFC 9457 problem with the status and a detail
// containing detail.
func (e *testEnv) wantProblem(resp *http.Response, body []byte, status int, detail string) {
	e.t.Helper()
	if resp.StatusCode != status {
		e.t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != status {
		e.t.Fatalf("not a problem document: %s", body)
	}
	if !bytes.Contains([]byte(p.Detail), []byte(detail)) {
		e.t.Errorf("detail %q does not mention %q", p.Detail, detail)
	}
}

func (e *testEnv) createApp(slug string, platforms ...mds.Platform) *mds.App {
	e.t.Helper()
	var a mds.App
	e.call("POST", "/api/v1/apps", e.admin, map[string]any{"slug": slug, "platforms": platforms}, 201, &a)
	return &a
}

// upload stores content for app and returns its sha256.
func (e *testEnv) upload(app, token string, content []byte) string {
	e.t.Helper()
	var res struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	}
	resp, b := e.request("POST", "/api/v1/apps/"+app+"/blobs", token, bytes.NewReader(content))
	if resp.StatusCode != 201 {
		e.t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Size != int64(len(content)) {
		e.t.Fatalf("upload answer %s", b)
	}
	return res.SHA256
}

func (e *testEnv) createPackage(app, token string, body map[string]any) *api.Package {
	e.t.Helper()
	var p api.Package
	e.call("POST", "/api/v1/apps/"+app+"/packages", token, body, 201, &p)
	return &p
}

type taskView struct {
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Mode   string `json:"mode"`
}

func (e *testEnv) createTask(app, token string, pkg int64, mode mds.UpgradeMode, releaseNow bool) *taskView {
	e.t.Helper()
	var t taskView
	e.call("POST", "/api/v1/apps/"+app+"/tasks", token,
		map[string]any{"package_id": pkg, "mode": mode, "release": releaseNow}, 201, &t)
	return &t
}

func (e *testEnv) act(app string, task int64, action mds.Action) *taskView {
	e.t.Helper()
	var t taskView
	e.call("POST", fmt.Sprintf("/api/v1/apps/%s/tasks/%d/%s", app, task, action), e.admin, nil, 200, &t)
	return &t
}

// answer mirrors the check response.
type answer struct {
	App     string    `json:"app"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Device  struct {
		Platform   string `json:"platform"`
		AppVersion string `json:"app_version"`
		Build      int64  `json:"build"`
		Hotpatch   *struct {
			ID           int64 `json:"patch_id"`
			PatchVersion int64 `json:"patch_version"`
		} `json:"hotpatch"`
	} `json:"device"`
	Hotpatch *struct {
		Action       string `json:"action"`
		TaskID       int64  `json:"task_id"`
		PatchID      int64  `json:"patch_id"`
		PatchVersion int64  `json:"patch_version"`
		URL          string `json:"url"`
		SHA256       string `json:"sha256"`
		Size         int64  `json:"size"`
		KeyID        string `json:"key_id"`
	} `json:"hotpatch"`
	Upgrade *struct {
		TaskID                int64  `json:"task_id"`
		PackageID             int64  `json:"package_id"`
		Version               string `json:"version"`
		Build                 int64  `json:"build"`
		Mode                  string `json:"mode"`
		Remind                bool   `json:"remind"`
		RemindIntervalSeconds int64  `json:"remind_interval_seconds"`
		Notes                 string `json:"notes"`
		Source                string `json:"source"`
		URL                   string `json:"url"`
		PackageURL            string `json:"package_url"`
		Size                  int64  `json:"size"`
		SHA256                string `json:"sha256"`
		Network               string `json:"network"`
		Silent                bool   `json:"silent"`
	} `json:"upgrade"`
}

// check posts a device context and decodes a 200 answer, after checking
// what every device checks: the deployment's signature over the body, the
// app key, and that it has not expired.
func (e *testEnv) check(dev map[string]any, header ...string) (*http.Response, *answer) {
	e.t.Helper()
	resp, b := e.request("POST", "/client/v1/check", "", dev, header...)
	if resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	if resp.StatusCode != 200 {
		e.t.Fatalf("check %v: %d %s", dev, resp.StatusCode, b)
	}
	e.verifyAnswer(resp, b, e.AnswerKey.Public())
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		e.t.Fatalf("check answer %s: %v", b, err)
	}
	if a.App != dev["app_key"] {
		e.t.Errorf("answer for app %q to a device of %q", a.App, dev["app_key"])
	}
	if fmt.Sprint(a.Device.Platform) != fmt.Sprint(dev["platform"]) || a.Device.AppVersion != dev["app_version"] {
		e.t.Errorf("answer for a device %+v, asked by %v %v", a.Device, dev["platform"], dev["app_version"])
	}
	if h, ok := dev["hotpatch"].(map[string]any); ok && (a.Device.Hotpatch == nil || fmt.Sprint(a.Device.Hotpatch.ID) != fmt.Sprint(h["patch_id"])) {
		e.t.Errorf("answer for a device running %+v, asked by one running %v", a.Device.Hotpatch, h)
	} else if !ok && a.Device.Hotpatch != nil {
		e.t.Errorf("answer for a device running %+v, asked by one running none", a.Device.Hotpatch)
	}
	if !a.Expires.After(e.Now()) {
		e.t.Errorf("answer expired at %s, now is %s", a.Expires, e.Now())
	}
	return resp, &a
}

// verifyAnswer checks that key's signature in the Mds-Signature header of
// resp is over body.
func (e *testEnv) verifyAnswer(resp *http.Response, body []byte, key *signing.PublicKey) {
	e.t.Helper()
	sig, err := answerSignature(resp.Header.Get("Mds-Signature"), key.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := key.Verify(body, sig); err != nil {
		e.t.Fatalf("answer signature: %v", err)
	}
}

// answerSignature finds key id's signature in an Mds-Signature value.
func answerSignature(header, id string) ([]byte, error) {
	for _, part := range strings.Split(header, ",") {
		kid, sig, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && kid == "keyid="+id && strings.HasPrefix(sig, "sig=") {
			return base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "sig="))
		}
	}
	return nil, fmt.Errorf("Mds-Signature %q has no signature by key %s", header, id)
}

func device(a *mds.App, platform mds.Platform, version string) map[string]any {
	return map[string]any{"app_key": a.Key, "platform": platform, "app_version": version, "device_id": "device-1",
		"model": "Pixel 9", "brand": "Google", "os_version": "15", "network": "wifi", "region": "CN-31",
		"city": "Shanghai", "language": "zh-CN", "attributes": map[string]string{"tier": "gold"}}
}
