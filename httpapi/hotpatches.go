package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"reflect"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/hotpatch"
	"github.com/mds-dev/mds/signing"
)

// uploadHotpatch takes a signed hotpatch file: the archive, that it is
// for this app and one of its platforms, that the store would take it
// (key registered and active, patch version new), the team's signature
// and every file (see uploadSigned).
func (s *Server) uploadHotpatch(w http.ResponseWriter, r *http.Request) {
	// No device downloads a hotpatch larger than the format allows.
	s.uploadSigned(w, r, "the hotpatch", hotpatch.DefaultMaxArchive, "MDS_MAX_UPLOAD, and the hotpatch format's 512 MiB", s.checkHotpatch)
}

// uploadSigned takes a team-signed file of a kind (what names it in
// messages; at most limit bytes, which limits names): it spools the body,
// hashing it, has check say whether it makes a package and which, and
// only then stores the file and the package, in that order, the package
// with its blob record in one transaction (which checks the key and the
// version again). A refusal stores nothing; losing a race with another
// upload of the same version leaves at most the file, which no app can
// name.
func (s *Server) uploadSigned(w http.ResponseWriter, r *http.Request, what string, limit int64, limits string,
	check func(r *http.Request, a *mds.App, f *os.File, size int64, sum string) (*mds.Artifact, error)) {
	a, t, ok := s.streamCaller(w, r, mds.RoleReleaser)
	if !ok {
		return
	}
	limit = min(s.maxUpload, limit)
	body, ok := s.streamBody(w, r, limit, what, limits)
	if !ok {
		return
	}
	f, err := os.CreateTemp(s.spool, "signed-*")
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), body)
	if err != nil {
		s.streamFailed(w, r, err, a, t, limit, what, limits)
		return
	}
	sum := hex.EncodeToString(h.Sum(nil))
	art, err := check(r, a, f, size, sum)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	art.CreatedBy = t.Name
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	blob, err := s.blobs.Put(r.Context(), f, sum)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if err := s.store.CreateArtifact(r.Context(), art, blob); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.metrics.uploaded.Add(float64(blob.Size))
	s.log.Info("signed package stored", "app", a.Slug, "kind", art.Kind, "package", art.ID, "platform", art.Platform,
		"version", art.Version, "sha256", sum, "by", t.Name)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(api.NewPackage(art))
}

// checkHotpatch validates the spooled hotpatch f and returns the package
// it makes, not yet stored.
func (s *Server) checkHotpatch(r *http.Request, a *mds.App, f *os.File, size int64, sum string) (*mds.Artifact, error) {
	pkg, err := hotpatch.Open(f, size, hotpatch.DefaultLimits)
	if err != nil {
		return nil, err
	}
	m := pkg.Manifest
	if err := packedFor(a, m.AppKey, "the hotpatch"); err != nil {
		return nil, err
	}
	if !a.HasPlatform(m.Platform) {
		return nil, mds.Errorf(mds.EINVALID, "the hotpatch is for %s; app %q ships on %s", m.Platform, a.Slug, mds.JoinPlatforms(a.Platforms))
	}
	spec := &mds.HotpatchSpec{PatchVersion: m.PatchVersion, Targets: m.Targets, Notes: m.Notes, KeyID: m.KeyID,
		SignedAt: m.Created(), Files: len(m.Files), FilesSize: m.TotalSize(), SHA256: sum, Size: size}
	art := &mds.Artifact{AppID: a.ID, Kind: mds.KindHotpatch, Platform: m.Platform, Version: strconv.FormatInt(m.PatchVersion, 10), Spec: spec}
	if err := s.checkSigned(r.Context(), art, m.KeyID, pkg.Verify); err != nil {
		return nil, err
	}
	if err := pkg.CheckFiles(); err != nil {
		return nil, err
	}
	return art, nil
}

// packedFor refuses a file (what) packed for another app key than a's,
// current or previous.
func packedFor(a *mds.App, key, what string) error {
	if key != a.Key && (a.PreviousKey == "" || key != a.PreviousKey) {
		return mds.Errorf(mds.EINVALID, "%s was packed for app key %q, not for app %q (key %s); pack it with --app %s",
			what, key, a.Slug, a.Key, a.Slug)
	}
	return nil
}

// checkSigned checks what every team-signed package shares: art, made
// of its manifest, is valid; the store would take it (the key, keyID,
// registered and active, the version new), as it will again when the
// package is created; and verify says the key signed the manifest.
func (s *Server) checkSigned(ctx context.Context, art *mds.Artifact, keyID string, verify func(*signing.PublicKey) error) error {
	if err := art.Validate(); err != nil {
		return err
	}
	if err := s.store.CheckArtifact(ctx, art); err != nil {
		return err
	}
	k, err := s.store.FindTeamKey(ctx, art.AppID, keyID)
	if err != nil {
		return err
	}
	pub, err := signing.ParsePublicKeyPEM([]byte(k.PEM))
	if err != nil {
		return err
	}
	return verify(pub)
}

// documentHotpatchUpload adds the hotpatch upload to the OpenAPI document.
func (s *Server) documentHotpatchUpload() {
	s.documentStream(&huma.Operation{
		OperationID: "upload-hotpatch",
		Method:      http.MethodPost,
		Path:        "/api/v1/apps/{app}/hotpatches",
		Summary:     "Upload a signed hotpatch file, as mds hotpatch pack writes it",
		Description: "Checks the archive (paths, entry types, sizes, compression ratio), that it is for this app and one of " +
			"its platforms, the team signature against the app's registered keys, and that its patch version is above " +
			"the last of each app version it patches; then stores it as a hotpatch package, to release with a task. " +
			"A refusal names the problem and stores nothing.",
		Tags: []string{"packages"},
	}, "application/zip", reflect.TypeFor[api.Package](), "201")
}
