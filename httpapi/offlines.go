package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/bundle"
	"github.com/mds-dev/mds/offline"
)

// uploadOffline takes a signed offline package: the archive, that it is
// for this app, that the store would take it (key registered and active,
// version above the package's last), the team's signature, and every
// file, read once while its canonical form is hashed (see uploadSigned).
func (s *Server) uploadOffline(w http.ResponseWriter, r *http.Request) {
	s.uploadSigned(w, r, "the offline package", offline.Limits.MaxArchive, "MDS_MAX_UPLOAD, and the offline package format's 512 MiB", s.checkOffline)
}

// checkOffline validates the spooled offline package f and returns the
// package it makes, not yet stored.
func (s *Server) checkOffline(r *http.Request, a *mds.App, f *os.File, size int64, sum string) (*mds.Artifact, error) {
	pkg, err := offline.Open(f, size, offline.Limits)
	if err != nil {
		return nil, err
	}
	m := pkg.Manifest
	if err := packedFor(a, m.AppKey, "the offline package"); err != nil {
		return nil, err
	}
	csize := bundle.CanonicalSize(len(pkg.ManifestBytes), len(pkg.Signature), m.Files)
	// Hashed once the files are checked, below; the store needs the spec
	// whole before.
	art := &mds.Artifact{AppID: a.ID, Kind: mds.KindOffline, Version: m.Version, Spec: m.Spec(sum, size, sum, csize)}
	if err := s.checkSigned(r.Context(), art, m.KeyID, pkg.Verify); err != nil {
		return nil, err
	}
	// Writing the canonical form reads every file and checks it against
	// the manifest, as CheckFiles would.
	h := sha256.New()
	if _, err := pkg.WriteCanonical(h); err != nil {
		return nil, err
	}
	art.Spec.(*mds.OfflineSpec).CanonicalSHA256 = hex.EncodeToString(h.Sum(nil))
	return art, nil
}

// documentOfflineUpload adds the offline package upload to the OpenAPI
// document.
func (s *Server) documentOfflineUpload() {
	s.documentStream(&huma.Operation{
		OperationID: "upload-offline",
		Method:      http.MethodPost,
		Path:        "/api/v1/apps/{app}/offline",
		Summary:     "Upload a signed H5 offline package, as mds offline pack writes it",
		Description: "Checks the archive (paths, entry types, duplicates, file count and sizes, compression ratio), that it is for " +
			"this app, the team signature against the app's registered keys, that its version is above every version its " +
			"package had, and every file against the manifest; then stores it as an offline package, to release with a task. " +
			"Once a version is released, deltas from the versions released before it are built in the background. " +
			"A refusal names the problem and stores nothing.",
		Tags: []string{"packages"},
	}, "application/zip", reflect.TypeFor[api.Package](), "201")
}

// registerOffline registers what the offline kind adds to packages and
// tasks: the state of its deltas.
func (s *Server) registerOffline() {
	register(s, op("list-deltas", http.MethodGet, "/api/v1/apps/{app}/offline/deltas",
		"List the deltas between an app's offline package versions: pending, building, ready, skipped or failed, and why", "packages", 0), s.listDeltas)
}

type listDeltasInput struct {
	App     string `path:"app" doc:"App slug"`
	Package string `query:"package" doc:"Only the deltas of this offline package ID"`
}

type deltasBody struct {
	Body api.Deltas
}

func (s *Server) listDeltas(ctx context.Context, in *listDeltasInput) (*deltasBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	if in.Package != "" {
		if err := mds.ValidOfflinePackage(in.Package); err != nil {
			return nil, err
		}
	}
	list, err := s.store.ListDeltas(ctx, a.ID, in.Package)
	if err != nil {
		return nil, err
	}
	return &deltasBody{Body: api.Deltas{Deltas: nonNil(list)}}, nil
}
