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
	"github.com/mds-dev/mds/api"
)

// upload streams a package file into the blob store. It is a plain handler,
// not a huma operation, because huma reads bodies whole and packages run to
// gigabytes; memory use stays at one copy buffer whatever the size.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	a, t, ok := s.streamCaller(w, r, mds.RoleReleaser)
	if !ok {
		return
	}
	body, ok := s.streamBody(w, r, s.maxUpload, "the file", "MDS_MAX_UPLOAD")
	if !ok {
		return
	}
	blob, err := s.blobs.Put(r.Context(), body, r.URL.Query().Get("sha256"))
	if err != nil {
		s.streamFailed(w, r, err, a, t, s.maxUpload, "the file", "MDS_MAX_UPLOAD")
		return
	}
	// The content is stored; only now does the app hold it. A kill in
	// between leaves content no app can name, never a record without it.
	if err := s.store.AddBlob(r.Context(), a.ID, blob, t.Name); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.metrics.uploaded.Add(float64(blob.Size))
	s.log.Info("blob stored", "app", a.Slug, "sha256", blob.SHA256, "size", blob.Size, "by", t.Name)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(api.Blob{SHA256: blob.SHA256, Size: blob.Size})
}

// streamCaller authenticates a streaming request and checks role on its
// {app}; on failure it has answered and returns false.
func (s *Server) streamCaller(w http.ResponseWriter, r *http.Request, role mds.Role) (*mds.App, *mds.Token, bool) {
	t, err := s.tokenFor(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mds"`)
		s.writeProblem(w, r, err)
		return nil, nil, false
	}
	a, err := s.appFor(contextWithCaller(r.Context(), t), r.PathValue("app"), role)
	if err != nil {
		s.writeProblem(w, r, err)
		return nil, nil, false
	}
	return a, t, true
}

// streamBody guards a request body: at most limit bytes, and no stall
// longer than the body timeout. what and setting name the limit in errors.
func (s *Server) streamBody(w http.ResponseWriter, r *http.Request, limit int64, what, setting string) (io.Reader, bool) {
	if r.ContentLength > limit {
		s.writeProblem(w, r, mds.Errorf(mds.ETOOLARGE, "%s is %d bytes; this server takes at most %d (%s)", what, r.ContentLength, limit, setting))
		return nil, false
	}
	return stallGuard{rc: http.NewResponseController(w), r: http.MaxBytesReader(w, r.Body, limit), wait: s.bodyWait}, true
}

// streamFailed answers a streaming request whose body could not be taken.
// A client that stalled or went away gets no answer: nobody would read it.
func (s *Server) streamFailed(w http.ResponseWriter, r *http.Request, err error, a *mds.App, t *mds.Token, limit int64, what, setting string) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		err = mds.Errorf(mds.ETOOLARGE, "%s is larger than %d bytes, the most this server takes (%s)", what, limit, setting)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Info("request body stalled and was dropped", "route", r.Pattern, "app", a.Slug, "by", t.Name, "stalled_for", s.bodyWait)
		return
	case r.Context().Err() != nil:
		s.log.Info("request abandoned by client", "route", r.Pattern, "app", a.Slug, "by", t.Name)
		return
	}
	s.writeProblem(w, r, err)
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

// documentStream adds a hand-written streaming operation to the OpenAPI
// document: its body of contentType, and a JSON answer of type ok.
func (s *Server) documentStream(op *huma.Operation, contentType string, ok reflect.Type, okStatus string) {
	oapi := s.api.OpenAPI()
	problem := &huma.Response{Description: "Error", Content: map[string]*huma.MediaType{
		"application/problem+json": {Schema: oapi.Components.Schemas.Schema(reflect.TypeFor[problem](), true, "")},
	}}
	op.Security = bearerSecurity
	op.Parameters = append([]*huma.Param{{Name: "app", In: "path", Required: true, Description: "App slug", Schema: &huma.Schema{Type: "string"}}}, op.Parameters...)
	op.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		contentType: {Schema: &huma.Schema{Type: "string", Format: "binary"}},
	}}
	op.Responses = map[string]*huma.Response{
		okStatus: {Description: "Done", Content: map[string]*huma.MediaType{
			"application/json": {Schema: oapi.Components.Schemas.Schema(ok, true, "")},
		}},
		"400": problem, "401": problem, "403": problem, "404": problem, "408": problem, "413": problem,
	}
	oapi.AddOperation(op)
}

// documentUpload adds the upload route to the OpenAPI document.
func (s *Server) documentUpload() {
	s.documentStream(&huma.Operation{
		OperationID: "upload-blob",
		Method:      http.MethodPost,
		Path:        "/api/v1/apps/{app}/blobs",
		Summary:     "Upload a package file (streamed, any size up to the server limit)",
		Description: "Stores the body content-addressed by SHA-256 and returns the digest to name in create-package. " +
			"Nothing becomes visible unless the whole body arrives and, when given, matches the expected sha256.",
		Tags: []string{"packages"},
		Parameters: []*huma.Param{
			{Name: "sha256", In: "query", Description: "Expected hex SHA-256; a mismatch stores nothing", Schema: &huma.Schema{Type: "string"}},
		},
	}, "application/octet-stream", reflect.TypeFor[api.Blob](), "201")
}
