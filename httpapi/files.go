package httpapi

import (
	"fmt"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
)

// routeFiles serves and documents the download of a package's stored
// file. It is a plain handler, as uploads are: huma would hold the
// answer in memory, and a package runs to gigabytes.
func (s *Server) routeFiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/apps/{app}/packages/{id}/file", s.packageFile)
	s.documentDownload(&huma.Operation{
		OperationID: "get-package-file",
		Method:      http.MethodGet,
		Path:        "/api/v1/apps/{app}/packages/{id}/file",
		Summary:     "Download a package's stored file: an uploaded upgrade, a hotpatch, an H5 offline package",
		Description: "Streams the file exactly as stored, whether or not a task delivers it, for people and tools that need it " +
			"(mds offline export bundles released offline packages into an app). Range requests resume a download; the ETag " +
			"is the file's quoted sha256. A package without a file on this server (an external URL, a store link) answers 404.",
		Tags: []string{"packages"},
		Parameters: []*huma.Param{
			{Name: "id", In: "path", Required: true, Description: "Package ID", Schema: &huma.Schema{Type: "integer", Format: "int64"}},
		},
	}, "application/octet-stream", "application/zip")
}

// packageFile streams the one stored file of a package of the app to a
// viewer of it. Unlike a device's download of a blob, it needs no task to
// deliver the package: a team exports what it has not released yet, too.
func (s *Server) packageFile(w http.ResponseWriter, r *http.Request) {
	a, _, ok := s.streamCaller(w, r, mds.RoleViewer)
	if !ok {
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	p, err := s.store.FindArtifact(r.Context(), a.ID, id)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if len(p.Blobs) != 1 {
		s.writeProblem(w, r, noFile(p))
		return
	}
	ref := p.Blobs[0]
	f, b, err := s.blobs.Open(r.Context(), ref.SHA256)
	if mds.ErrorCode(err) == mds.ENOTFOUND {
		// The package's record names a file the store lost: a fault of
		// the server, not of the request, which the log must show.
		err = fmt.Errorf("the file of package %d of app %s (sha256 %s) is missing from the blob store; restore it from a backup: %v",
			p.ID, a.Slug, ref.SHA256, err)
	}
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	defer f.Close()
	if !rangeServable(w, r, b.Size) {
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+ref.SHA256+`"`)
	// A viewer's token may be revoked: no shared cache keeps the file.
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Content-Type", fileType(p.Kind))
	http.ServeContent(problemOnError(w, renderProblem), r, "", b.ModTime, f)
}

// fileType is the media type of the stored file of a package of kind k:
// team-signed packages are ZIP archives, upgrades whatever was uploaded.
func fileType(k mds.Kind) string {
	switch k {
	case mds.KindHotpatch, mds.KindOffline:
		return "application/zip"
	}
	return "application/octet-stream"
}

// noFile says why package p has no file to download here.
func noFile(p *mds.Artifact) error {
	where := ""
	if u, ok := p.Spec.(*mds.UpgradeSpec); ok && u.URL != "" {
		where = fmt.Sprintf(": it is a %s link to %s; download it from there", u.Source, u.URL)
	}
	return mds.Errorf(mds.ENOTFOUND, "package %d has no file stored on this server%s", p.ID, where)
}

// documentDownload adds a hand-written download to the OpenAPI document:
// its answer, the whole file or the ranges asked for, in one of
// contentTypes.
func (s *Server) documentDownload(op *huma.Operation, contentTypes ...string) {
	oapi := s.api.OpenAPI()
	problem := &huma.Response{Description: "Error", Content: map[string]*huma.MediaType{
		"application/problem+json": {Schema: oapi.Components.Schemas.Schema(reflect.TypeFor[problem](), true, "")},
	}}
	file := map[string]*huma.MediaType{}
	for _, t := range contentTypes {
		file[t] = &huma.MediaType{Schema: &huma.Schema{Type: "string", Format: "binary"}}
	}
	op.Security = bearerSecurity
	op.Parameters = append([]*huma.Param{
		{Name: "app", In: "path", Required: true, Description: "App slug", Schema: &huma.Schema{Type: "string"}},
		{Name: "Range", In: "header", Description: "bytes=FIRST-LAST, FIRST- or -LENGTH, at most 8 ranges", Schema: &huma.Schema{Type: "string"}},
	}, op.Parameters...)
	op.Responses = map[string]*huma.Response{
		"200": {Description: "The whole file", Content: file},
		"206": {Description: "The ranges asked for", Content: file},
		"304": {Description: "Not modified: If-None-Match names the file"},
		"401": problem, "404": problem, "416": problem,
	}
	oapi.AddOperation(op)
}
