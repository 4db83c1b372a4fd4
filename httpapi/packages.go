package httpapi

import (
	"context"
	"net/http"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

func (s *Server) registerPackages() {
	register(s, op("create-package", http.MethodPost, "/api/v1/apps/{app}/packages",
		"Describe an upgrade package: an uploaded file, an external URL or a store link", "packages", 201), s.createPackage)
	register(s, op("list-packages", http.MethodGet, "/api/v1/apps/{app}/packages", "List an app's packages, newest first", "packages", 0), s.listPackages)
	register(s, op("get-package", http.MethodGet, "/api/v1/apps/{app}/packages/{id}", "Get a package", "packages", 0), s.getPackage)
	register(s, op("delete-package", http.MethodDelete, "/api/v1/apps/{app}/packages/{id}",
		"Delete a package no task delivers (delete stopped tasks first)", "packages", 204), s.deletePackage)
}

type packageInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.CreatePackage
}

type packageBody struct {
	Body *api.Package
}

func (s *Server) createPackage(ctx context.Context, in *packageInput) (*packageBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	b := in.Body
	spec := &mds.UpgradeSpec{
		Build: b.Build, Notes: b.Notes, Source: b.Source, SHA256: b.SHA256, Size: b.Size, URL: b.URL, FileName: b.FileName,
		AppVersions: b.AppVersions, Channel: b.Channel, Network: b.Network, Silent: b.Silent, Enterprise: b.Enterprise,
		BundleID: b.BundleID, Title: b.Title,
	}
	if spec.Source == "" {
		spec.Source = mds.SourceBlob
		if spec.URL != "" {
			spec.Source = mds.SourceURL
		}
	}
	if spec.Source == mds.SourceBlob && mds.ValidSHA256(spec.SHA256) {
		// The size is the uploaded file's; a caller may state it, and is
		// held to it.
		blob, err := s.store.FindBlob(ctx, a.ID, spec.SHA256)
		if mds.ErrorCode(err) == mds.ENOTFOUND {
			err = mds.Errorf(mds.EINVALID, "this app has no uploaded file with sha256 %s; upload it first (POST /api/v1/apps/%s/blobs)", spec.SHA256, a.Slug)
		}
		if err != nil {
			return nil, err
		}
		if spec.Size != 0 && spec.Size != blob.Size {
			return nil, mds.Errorf(mds.EINVALID, "size %d does not match the uploaded file's %d bytes", spec.Size, blob.Size)
		}
		spec.Size = blob.Size
	}
	p := &mds.Artifact{AppID: a.ID, Kind: mds.KindUpgrade, Platform: b.Platform, Version: b.Version, Spec: spec, CreatedBy: caller(ctx).Name}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if !a.HasPlatform(p.Platform) {
		return nil, mds.Errorf(mds.EINVALID, "app %q does not ship on %s; its platforms are %s", a.Slug, p.Platform, mds.JoinPlatforms(a.Platforms))
	}
	if err := s.store.CreateArtifact(ctx, p); err != nil {
		return nil, err
	}
	s.log.Info("package created", "app", a.Slug, "package", p.ID, "kind", p.Kind, "version", p.Version, "by", p.CreatedBy)
	return &packageBody{Body: api.NewPackage(p)}, nil
}

type listPackagesInput struct {
	App  string   `path:"app" doc:"App slug"`
	Kind mds.Kind `query:"kind" enum:"upgrade,hotpatch,offline,config" doc:"Only packages of this kind"`
	Paging
}

type packagesBody struct {
	Body api.Packages
}

func (s *Server) listPackages(ctx context.Context, in *listPackagesInput) (*packagesBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListArtifacts(ctx, a.ID, in.Kind, in.page())
	if err != nil {
		return nil, err
	}
	out := &packagesBody{Body: api.Packages{Packages: []*api.Package{}}}
	for _, p := range list {
		out.Body.Packages = append(out.Body.Packages, api.NewPackage(p))
	}
	out.Body.Next = next(len(list), in.Limit, func() string { return idCursor(list[len(list)-1].ID) })
	return out, nil
}

func (s *Server) getPackage(ctx context.Context, in *objectPath) (*packageBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	p, err := s.store.FindArtifact(ctx, a.ID, in.ID)
	if err != nil {
		return nil, err
	}
	return &packageBody{Body: api.NewPackage(p)}, nil
}

func (s *Server) deletePackage(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteArtifact(ctx, a.ID, in.ID); err != nil {
		return nil, err
	}
	s.log.Info("package deleted", "app", a.Slug, "package", in.ID, "by", caller(ctx).Name)
	return nil, nil
}
