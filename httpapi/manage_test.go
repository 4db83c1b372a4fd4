package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/blobtest"
)

func (e *testEnv) createToken(by, name string, body map[string]any) string {
	e.t.Helper()
	body["name"] = name
	var res struct {
		Secret string    `json:"secret"`
		Token  mds.Token `json:"token"`
	}
	e.call("POST", "/api/v1/tokens", by, body, 201, &res)
	if !strings.HasPrefix(res.Secret, "mds_") || res.Token.Name != name {
		e.t.Fatalf("created token %+v", res)
	}
	return res.Secret
}

func grant(app string, role mds.Role) map[string]any {
	return map[string]any{"grants": []map[string]any{{"app": app, "role": role}}}
}

// TestRolesAcrossApps checks every role against its own app and another one.
func TestRolesAcrossApps(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	e.createApp("blog", mds.Android)
	viewer := e.createToken(e.admin, "shop-viewer", grant("shop", mds.RoleViewer))
	releaser := e.createToken(e.admin, "shop-releaser", grant("shop", mds.RoleReleaser))
	shopAdmin := e.createToken(e.admin, "shop-admin", grant("shop", mds.RoleAdmin))
	blogReleaser := e.createToken(e.admin, "blog-releaser", grant("blog", mds.RoleReleaser))
	mixed := e.createToken(e.admin, "mixed", map[string]any{"grants": []map[string]any{{"app": "shop", "role": "admin"}, {"app": "blog", "role": "viewer"}}})
	var blogReleaserToken mds.Token
	e.call("GET", "/api/v1/token", blogReleaser, nil, 200, &blogReleaserToken)
	blogReleaserID := blogReleaserToken.ID
	pkgBody := func() map[string]any {
		return map[string]any{"platform": "android", "version": "2.0", "url": "https://cdn.example.com/a.apk"}
	}
	shopPkg := e.createPackage("shop", e.admin, pkgBody())

	status := func(method, path, token string, body any) int {
		resp, _ := e.request(method, path, token, body)
		return resp.StatusCode
	}
	tests := []struct {
		name         string
		method, path string
		token        string
		body         any
		want         int
	}{
		{"viewer reads its app", "GET", "/api/v1/apps/shop", viewer, nil, 200},
		{"viewer lists packages", "GET", "/api/v1/apps/shop/packages", viewer, nil, 200},
		{"viewer cannot create packages", "POST", "/api/v1/apps/shop/packages", viewer, pkgBody(), 403},
		{"viewer cannot upload", "POST", "/api/v1/apps/shop/blobs", viewer, strings.NewReader("x"), 403},
		{"viewer cannot create tasks", "POST", "/api/v1/apps/shop/tasks", viewer, map[string]any{"package_id": shopPkg.ID, "mode": "force"}, 403},
		{"viewer cannot see another app", "GET", "/api/v1/apps/blog", viewer, nil, 404},
		{"releaser creates packages", "POST", "/api/v1/apps/shop/packages", releaser, pkgBody(), 201},
		{"releaser uploads", "POST", "/api/v1/apps/shop/blobs", releaser, strings.NewReader("x"), 201},
		{"releaser creates tasks", "POST", "/api/v1/apps/shop/tasks", releaser, map[string]any{"package_id": shopPkg.ID, "mode": "force"}, 201},
		{"releaser cannot touch another app", "POST", "/api/v1/apps/blog/packages", releaser, pkgBody(), 404},
		{"releaser cannot upload to another app", "POST", "/api/v1/apps/blog/blobs", releaser, strings.NewReader("x"), 404},
		{"releaser cannot create tokens", "POST", "/api/v1/tokens", releaser, map[string]any{"name": "x", "grants": []map[string]any{{"app": "shop", "role": "viewer"}}}, 403},
		{"other app's releaser cannot read shop", "GET", "/api/v1/apps/shop/tasks", blogReleaser, nil, 404},
		{"other app's releaser cannot use shop's package", "POST", "/api/v1/apps/blog/tasks", blogReleaser, map[string]any{"package_id": shopPkg.ID, "mode": "force"}, 404},
		{"app admin grants on its app", "POST", "/api/v1/tokens", shopAdmin, map[string]any{"name": "shop-ci", "grants": []map[string]any{{"app": "shop", "role": "releaser"}}}, 201},
		{"app admin cannot see another app to grant on", "POST", "/api/v1/tokens", shopAdmin, map[string]any{"name": "blog-x", "grants": []map[string]any{{"app": "blog", "role": "viewer"}}}, 404},
		{"app admin cannot grant where it only views", "POST", "/api/v1/tokens", mixed, map[string]any{"name": "blog-y", "grants": []map[string]any{{"app": "blog", "role": "viewer"}}}, 403},
		{"viewer cannot revoke others", "DELETE", fmt.Sprintf("/api/v1/tokens/%d", blogReleaserID), viewer, nil, 404},
		{"app admin cannot revoke another app's token", "DELETE", fmt.Sprintf("/api/v1/tokens/%d", blogReleaserID), shopAdmin, nil, 404},
		{"app admin cannot mint admins", "POST", "/api/v1/tokens", shopAdmin, map[string]any{"name": "root2", "admin": true}, 403},
		{"app admin cannot create apps", "POST", "/api/v1/apps", shopAdmin, map[string]any{"slug": "x", "platforms": []string{"ios"}}, 403},
		{"no token", "GET", "/api/v1/apps", "", nil, 401},
		{"wrong token", "GET", "/api/v1/apps", "mds_notarealtoken", nil, 401},
		{"upload without token", "POST", "/api/v1/apps/shop/blobs", "", strings.NewReader("x"), 401},
	}
	for _, tt := range tests {
		if got := status(tt.method, tt.path, tt.token, tt.body); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
	}

	var apps struct {
		Apps []mds.App `json:"apps"`
	}
	e.call("GET", "/api/v1/apps", viewer, nil, 200, &apps)
	if len(apps.Apps) != 1 || apps.Apps[0].Slug != "shop" {
		t.Errorf("viewer of shop lists %+v", apps.Apps)
	}
	var tokens struct {
		Tokens []mds.Token `json:"tokens"`
	}
	e.call("GET", "/api/v1/tokens", shopAdmin, nil, 200, &tokens)
	for _, tok := range tokens.Tokens {
		if tok.Name == "blog-releaser" || tok.Name == "admin" {
			t.Errorf("shop admin sees token %q", tok.Name)
		}
	}
	// An app key is not a management credential.
	var shop mds.App
	e.call("GET", "/api/v1/apps/shop", e.admin, nil, 200, &shop)
	if got := status("GET", "/api/v1/apps/shop", shop.Key, nil); got != 401 {
		t.Errorf("app key as bearer token: %d, want 401", got)
	}
}

func TestTokenLifecycle(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	secret := e.createToken(e.admin, "short", map[string]any{"grants": []map[string]any{{"app": "shop", "role": "viewer"}}, "expires_in_seconds": 3600})
	var me mds.Token
	e.call("GET", "/api/v1/token", secret, nil, 200, &me)
	if me.Name != "short" || me.ExpiresAt == nil || len(me.Grants) != 1 || me.Grants[0].App != "shop" {
		t.Fatalf("whoami = %+v", me)
	}
	// An expiring token's tokens expire with it at the latest.
	shopAdmin := e.createToken(e.admin, "shop-admin", map[string]any{"grants": []map[string]any{{"app": "shop", "role": "admin"}}, "expires_in_seconds": 3600})
	var child struct{ Token mds.Token }
	e.call("POST", "/api/v1/tokens", shopAdmin, map[string]any{"name": "child", "grants": []map[string]any{{"app": "shop", "role": "viewer"}}}, 201, &child)
	if child.Token.ExpiresAt == nil || !child.Token.ExpiresAt.Equal(*me.ExpiresAt) {
		t.Errorf("token made by an expiring token expires at %v, want %v", child.Token.ExpiresAt, me.ExpiresAt)
	}
	resp, b := e.request("POST", "/api/v1/tokens", shopAdmin, map[string]any{"name": "longer", "expires_in_seconds": 7200,
		"grants": []map[string]any{{"app": "shop", "role": "viewer"}}})
	e.wantProblem(resp, b, 403, "expire no later")
	resp, _ = e.request("POST", "/api/v1/tokens", e.admin, map[string]any{"name": "forever", "admin": true, "expires_in_seconds": 10_000_000_000})
	if resp.StatusCode != 422 {
		t.Errorf("absurd lifetime: %d, want 422", resp.StatusCode)
	}

	e.advance(time.Hour)
	resp, b = e.request("GET", "/api/v1/apps", secret, nil)
	e.wantProblem(resp, b, 401, "expired")
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}

	other := e.createToken(e.admin, "temp", grant("shop", mds.RoleViewer))
	var tokens struct {
		Tokens []mds.Token `json:"tokens"`
	}
	e.call("GET", "/api/v1/tokens", e.admin, nil, 200, &tokens)
	var id int64
	for _, tok := range tokens.Tokens {
		if tok.Name == "temp" {
			id = tok.ID
		}
	}
	e.call("DELETE", fmt.Sprintf("/api/v1/tokens/%d", id), e.admin, nil, 204, nil)
	if resp, _ := e.request("GET", "/api/v1/apps", other, nil); resp.StatusCode != 401 {
		t.Errorf("revoked token still works: %d", resp.StatusCode)
	}
	resp, b = e.request("POST", "/api/v1/tokens", e.admin, map[string]any{"name": "short", "admin": true})
	e.wantProblem(resp, b, 409, "already exists")
	resp, b = e.request("POST", "/api/v1/tokens", e.admin, map[string]any{"name": "nothing"})
	e.wantProblem(resp, b, 400, "at least one app")
	resp, b = e.request("POST", "/api/v1/tokens", e.admin, map[string]any{"name": "ghost", "grants": []map[string]any{{"app": "nope", "role": "viewer"}}})
	e.wantProblem(resp, b, 404, "nope")
}

func TestManagementValidation(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android, mds.IOS)
	resp, b := e.request("POST", "/api/v1/apps", e.admin, map[string]any{"slug": "shop", "platforms": []string{"ios"}})
	e.wantProblem(resp, b, 409, "already exists")
	resp, b = e.request("POST", "/api/v1/apps", e.admin, map[string]any{"slug": "Bad Slug!", "platforms": []string{"ios"}})
	e.wantProblem(resp, b, 400, "slug")
	resp, b = e.request("POST", "/api/v1/apps", e.admin, map[string]any{"slug": "x", "platforms": []string{"palm"}})
	e.wantProblem(resp, b, 400, "palm")
	cases := []struct {
		body   map[string]any
		status int
		detail string
	}{
		{map[string]any{"platform": "android", "version": "2.0", "sha256": strings.Repeat("a", 64)}, 400, "upload it first"},
		{map[string]any{"platform": "android", "version": "two", "url": "https://x.example.com/a"}, 400, "start with a digit"},
		{map[string]any{"platform": "android", "version": "2.0", "url": "ftp://x.example.com/a"}, 400, "scheme"},
		{map[string]any{"platform": "android", "version": "2.0", "source": "store", "url": "https://play.google.com/x", "silent": true}, 400, "silently"},
		{map[string]any{"platform": "android", "version": "2.0", "url": "https://x.example.com/a", "enterprise": true, "bundle_id": "com.x.y"}, 400, "ios packages only"},
		{map[string]any{"platform": "ios", "version": "2.0", "url": "https://x.example.com/a", "enterprise": true}, 400, "bundle_id"},
		{map[string]any{"platform": "android", "version": "2.0", "url": "https://x.example.com/a", "app_versions": []map[string]string{{"min": "3.0", "max": "2.0"}}}, 400, "empty"},
	}
	for _, c := range cases {
		resp, b := e.request("POST", "/api/v1/apps/shop/packages", e.admin, c.body)
		e.wantProblem(resp, b, c.status, c.detail)
	}
	// Unknown fields are caught by the schema instead of silently ignored.
	resp, b = e.request("POST", "/api/v1/apps/shop/packages", e.admin,
		map[string]any{"platform": "android", "version": "2.0", "url": "https://x.example.com/a", "chanel": "typo"})
	if resp.StatusCode != 422 || !bytes.Contains(b, []byte("chanel")) {
		t.Errorf("misspelt field: %d %s", resp.StatusCode, b)
	}
	resp, b = e.request("POST", "/api/v1/apps/shop/tasks", e.admin, map[string]any{"package_id": 999, "mode": "force"})
	e.wantProblem(resp, b, 404, "package 999")
	resp, _ = e.request("POST", "/api/v1/apps/shop/tasks", e.admin, map[string]any{"package_id": 1, "mode": "sometimes"})
	if resp.StatusCode != 422 {
		t.Errorf("unknown mode: %d, want 422", resp.StatusCode)
	}
}

func TestUploadRefusals(t *testing.T) {
	e := newEnv(t, withMaxUpload(1<<20))
	e.createApp("shop", mds.Android)
	content := []byte("the real package")
	wrong := blobtest.Sum([]byte("another package"))
	resp, b := e.request("POST", "/api/v1/apps/shop/blobs?sha256="+wrong, e.admin, bytes.NewReader(content))
	e.wantProblem(resp, b, 400, "was expected")
	if _, err := e.Blobs.Stat(context.Background(), blobtest.Sum(content)); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("mismatched upload was kept: %v", err)
	}
	big := make([]byte, 1<<20+1)
	resp, b = e.request("POST", "/api/v1/apps/shop/blobs", e.admin, bytes.NewReader(big))
	e.wantProblem(resp, b, 413, "MDS_MAX_UPLOAD")
	// Without a Content-Length the limit trips midway; nothing is kept.
	resp, b = e.request("POST", "/api/v1/apps/shop/blobs", e.admin, io.MultiReader(bytes.NewReader(big)))
	e.wantProblem(resp, b, 413, "MDS_MAX_UPLOAD")
	if _, err := e.Blobs.Stat(context.Background(), blobtest.Sum(big)); mds.ErrorCode(err) != mds.ENOTFOUND {
		t.Errorf("oversized upload was kept: %v", err)
	}
	resp, b = e.request("POST", "/api/v1/apps/nope/blobs", e.admin, bytes.NewReader(content))
	e.wantProblem(resp, b, 404, "nope")
}

// countingReader produces n pseudo-random bytes without holding them.
type countingReader struct{ left, state uint64 }

func (r *countingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > r.left {
		p = p[:r.left]
	}
	for i := range p {
		r.state = r.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(r.state >> 56)
	}
	r.left -= uint64(len(p))
	return len(p), nil
}

// TestUploadStreams uploads 64 MiB through the real HTTP stack and checks
// that the server allocated far less than that: the body is streamed to
// disk, never held whole.
func TestUploadStreams(t *testing.T) {
	e := newEnv(t)
	e.createApp("shop", mds.Android)
	const size = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("POST", e.URL+"/api/v1/apps/shop/blobs", &countingReader{left: size, state: 1})
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Size int64 }
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 201 || res.Size != size {
		t.Fatalf("upload: %d, size %d", resp.StatusCode, res.Size)
	}
	// Client and server share this process, so this bounds both together.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("uploading %d MiB allocated %d MiB; the body is being buffered", size>>20, alloc>>20)
	}
}

func TestOpenAPIHealthMetrics(t *testing.T) {
	e := newEnv(t)
	app := e.createApp("shop", mds.Android)
	resp, b := e.request("GET", "/api/v1/openapi.json", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("openapi: %d", resp.StatusCode)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	for path, method := range map[string]string{
		"/api/v1/apps": "post", "/api/v1/apps/{app}/blobs": "post", "/api/v1/apps/{app}/packages": "post",
		"/api/v1/apps/{app}/tasks/{id}/{action}": "post", "/api/v1/apps/{app}/tasks/{id}/history": "get", "/api/v1/tokens": "post",
	} {
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("openapi lacks %s %s", method, path)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := e.request("GET", p, "", nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	e.check(device(app, mds.Android, "1.0"))
	e.request("POST", "/client/v1/check", "", strings.NewReader("{"))
	_, b = e.request("GET", "/metrics", "", nil)
	m := string(b)
	for _, want := range []string{
		`mds_checks_total{outcome="none"} 1`, `mds_checks_total{outcome="invalid"} 1`,
		`mds_http_requests_total{code="200",method="POST",route="POST /client/v1/check"} 1`,
		`mds_http_requests_total{code="201",method="POST",route="POST /api/v1/apps"} 1`,
		`mds_snapshot_revision 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "device-1") || strings.Contains(m, app.Key) {
		t.Error("metrics carry per-device or per-app labels")
	}
}
