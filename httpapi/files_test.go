package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/httpapi"
	"github.com/mds-dev/mds/offline/offlinetest"
	"github.com/mds-dev/mds/signing"
)

// TestPackageFile: a viewer downloads the stored file of an upgrade and
// of an offline package, whole, by range and conditionally; a token of
// another app, another app's package ID and a store link get 404.
func TestPackageFile(t *testing.T) {
	e := newEnv(t)
	shop := e.createApp("shop", mds.Android, mds.IOS)
	e.createApp("blog", mds.Android)
	content := make([]byte, 100_000)
	rand.NewChaCha8([32]byte{1}).Read(content)
	sum := e.upload("shop", e.admin, content)
	apk := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.1.0", "sha256": sum})
	store := e.createPackage("shop", e.admin, map[string]any{"platform": "ios", "version": "2.1.0", "source": "store",
		"url": "https://apps.apple.com/app/id123"})
	key := e.team("shop", signing.ECDSAP256)
	zip := offlinetest.Pack(t, offlinetest.Site("1.0.0", 20_000), offlinetest.Manifest(shop.Key, "home", "1.0.0"), key)
	var home api.Package
	e.call("POST", "/api/v1/apps/shop/offline", e.admin, bytes.NewReader(zip), 201, &home)
	viewer := e.createToken(e.admin, "shop-viewer", grant("shop", mds.RoleViewer))
	blogViewer := e.createToken(e.admin, "blog-viewer", grant("blog", mds.RoleViewer))
	file := func(app string, id int64) string { return fmt.Sprintf("/api/v1/apps/%s/packages/%d/file", app, id) }

	resp, b := e.request("GET", file("shop", apk.ID), viewer, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, content) {
		t.Fatalf("download: %d, %d bytes", resp.StatusCode, len(b))
	}
	if et, ct := resp.Header.Get("ETag"), resp.Header.Get("Content-Type"); et != `"`+sum+`"` || ct != "application/octet-stream" {
		t.Errorf("ETag %s, Content-Type %s", et, ct)
	}
	resp, b = e.request("GET", file("shop", apk.ID), viewer, nil, "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(b, content[1000:2000]) || resp.Header.Get("Content-Range") != "bytes 1000-1999/100000" {
		t.Errorf("range: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
	}
	resp, _ = e.request("GET", file("shop", apk.ID), viewer, nil, "If-None-Match", `"`+sum+`"`)
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match naming the file: %d, want 304", resp.StatusCode)
	}
	resp, b = e.request("GET", file("shop", apk.ID), viewer, nil, "Range", "bytes=100000-")
	e.wantProblem(resp, b, 416, "end of the blob")
	if cr := resp.Header.Get("Content-Range"); cr != "bytes */100000" {
		t.Errorf("416 Content-Range %q", cr)
	}

	resp, b = e.request("GET", file("shop", home.ID), viewer, nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, zip) || resp.Header.Get("Content-Type") != "application/zip" {
		t.Errorf("offline package: %d %s, %d bytes of %d", resp.StatusCode, resp.Header.Get("Content-Type"), len(b), len(zip))
	}

	resp, b = e.request("GET", file("shop", apk.ID), blogViewer, nil)
	e.wantProblem(resp, b, 404, `app "shop" not found`)
	resp, b = e.request("GET", file("blog", apk.ID), e.admin, nil)
	e.wantProblem(resp, b, 404, fmt.Sprintf("package %d not found", apk.ID))
	resp, b = e.request("GET", file("shop", store.ID), viewer, nil)
	e.wantProblem(resp, b, 404, "no file stored on this server: it is a store link to https://apps.apple.com/app/id123")
	resp, b = e.request("GET", "/api/v1/apps/shop/packages/1x/file", viewer, nil)
	e.wantProblem(resp, b, 404, "not an ID")
	resp, b = e.request("GET", file("shop", apk.ID), "", nil)
	e.wantProblem(resp, b, 401, "Bearer")

	_, b = e.request("GET", "/api/v1/openapi.json", "", nil)
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	got := doc.Paths["/api/v1/apps/{app}/packages/{id}/file"]["get"].Responses
	if got["200"].Content["application/zip"] == nil || got["206"].Content["application/octet-stream"] == nil || got["404"].Content["application/problem+json"] == nil {
		t.Errorf("the OpenAPI document describes the download as %+v", got)
	}
}

// losingBlobs is a blob store that has lost one file.
type losingBlobs struct {
	mds.BlobStore
	lost string
}

func (b *losingBlobs) Open(ctx context.Context, sum string) (io.ReadSeekCloser, mds.Blob, error) {
	if sum == b.lost {
		return nil, mds.Blob{}, mds.Errorf(mds.ENOTFOUND, "no blob with sha256 %s; upload it first", sum)
	}
	return b.BlobStore.Open(ctx, sum)
}

// TestPackageFileLost: a package whose file the blob store lost is the
// server's fault (500), not a missing package the caller should upload.
func TestPackageFileLost(t *testing.T) {
	blobs := &losingBlobs{}
	e := newEnv(t, func(c *httpapi.Config) { blobs.BlobStore, c.Blobs = c.Blobs, blobs })
	e.createApp("shop", mds.Android)
	blobs.lost = e.upload("shop", e.admin, []byte("an apk"))
	apk := e.createPackage("shop", e.admin, map[string]any{"platform": "android", "version": "2.1.0", "sha256": blobs.lost})
	resp, b := e.request("GET", fmt.Sprintf("/api/v1/apps/shop/packages/%d/file", apk.ID), e.admin, nil)
	e.wantProblem(resp, b, http.StatusInternalServerError, "server log")
}
