package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
)

// uploadedBlob answers an upload.
type uploadedBlob struct {
	SHA256 string `json:"sha256" doc:"Name the package by this in create-package"`
	Size   int64  `json:"size"`
}

// upload streams a package file into the blob store. It is a plain handler,
// not a huma operation, because huma reads bodies whole and packages run to
// gigabytes; memory use stays at one copy buffer whatever the size.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	t, err := s.tokenFor(ctx, r.Header.Get("Authorization"))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mds"`)
		s.writeProblem(w, r, err)
		return
	}
	ctx = contextWithCaller(ctx, t)
	a, err := s.appFor(ctx, r.PathValue("app"), mds.RoleReleaser)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if r.ContentLength > s.maxUpload {
		s.writeProblem(w, r, mds.Errorf(mds.ETOOLARGE, "the file is %d bytes; this server takes at most %d (MDS_MAX_UPLOAD)", r.ContentLength, s.maxUpload))
		return
	}
	want := r.URL.Query().Get("sha256")
	body := stallGuard{rc: http.NewResponseController(w), r: http.MaxBytesReader(w, r.Body, s.maxUpload), wait: s.bodyWait}
	blob, err := s.blobs.Put(ctx, body, want)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = mds.Errorf(mds.ETOOLARGE, "the file is larger than %d bytes, the most this server takes (MDS_MAX_UPLOAD)", s.maxUpload)
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Info("upload stalled and was dropped", "app", a.Slug, "by", t.Name, "stalled_for", s.bodyWait)
			return
		} else if ctx.Err() != nil {
			s.log.Info("upload abandoned by client", "app", a.Slug, "by", t.Name)
			return
		}
		s.writeProblem(w, r, err)
		return
	}
	s.metrics.uploaded.Add(float64(blob.Size))
	s.log.Info("blob stored", "app", a.Slug, "sha256", blob.SHA256, "size", blob.Size, "by", t.Name)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(uploadedBlob{SHA256: blob.SHA256, Size: blob.Size})
}

// stallGuard fails an upload whose body stops arriving for wait: a client
// that stalls would otherwise hold a connection and a temp file forever.
// Each read pushes the connection's read deadline forward.
type stallGuard struct {
	rc   *http.ResponseController
	r    io.Reader
	wait time.Duration
}

func (g stallGuard) Read(p []byte) (int, error) {
	g.rc.SetReadDeadline(time.Now().Add(g.wait))
	return g.r.Read(p)
}

// documentUpload adds the hand-written upload route to the OpenAPI document.
func (s *Server) documentUpload() {
	oapi := s.api.OpenAPI()
	problem := &huma.Response{Description: "Error", Content: map[string]*huma.MediaType{
		"application/problem+json": {Schema: oapi.Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "")},
	}}
	oapi.AddOperation(&huma.Operation{
		OperationID: "upload-blob",
		Method:      http.MethodPost,
		Path:        "/api/v1/apps/{app}/blobs",
		Summary:     "Upload a package file (streamed, any size up to the server limit)",
		Description: "Stores the body content-addressed by SHA-256 and returns the digest to name in create-package. " +
			"Nothing becomes visible unless the whole body arrives and, when given, matches the expected sha256.",
		Tags:     []string{"packages"},
		Security: bearerSecurity,
		Parameters: []*huma.Param{
			{Name: "app", In: "path", Required: true, Description: "App slug", Schema: &huma.Schema{Type: "string"}},
			{Name: "sha256", In: "query", Description: "Expected hex SHA-256; a mismatch stores nothing", Schema: &huma.Schema{Type: "string"}},
		},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}},
		Responses: map[string]*huma.Response{
			"201": {Description: "Stored", Content: map[string]*huma.MediaType{
				"application/json": {Schema: oapi.Components.Schemas.Schema(reflect.TypeFor[uploadedBlob](), true, "")},
			}},
			"400": problem, "401": problem, "403": problem, "404": problem, "413": problem,
		},
	})
}
