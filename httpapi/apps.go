package httpapi

import (
	"context"
	"net/http"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

func (s *Server) registerApps() {
	register(s, op("list-apps", http.MethodGet, "/api/v1/apps", "List the apps this token can see", "apps", 0), s.listApps)
	register(s, op("create-app", http.MethodPost, "/api/v1/apps", "Create an app (admin token)", "apps", 201), s.createApp)
	register(s, op("get-app", http.MethodGet, "/api/v1/apps/{app}", "Get an app", "apps", 0), s.getApp)
	register(s, op("update-app", http.MethodPatch, "/api/v1/apps/{app}",
		"Rename an app or change its platforms (app admin)", "apps", 0), s.updateApp)
	register(s, op("delete-app", http.MethodDelete, "/api/v1/apps/{app}",
		"Delete an app and everything it holds (admin token); refused while a task is not stopped", "apps", 204), s.deleteApp)
	register(s, op("rotate-app-key", http.MethodPost, "/api/v1/apps/{app}/key",
		"Give the app a new key; the old one stays accepted from devices until retired (app admin)", "apps", 0), s.rotateKey)
	register(s, op("retire-app-key", http.MethodDelete, "/api/v1/apps/{app}/key/previous",
		"Stop accepting the app's previous key from devices (app admin)", "apps", 0), s.retireKey)
	register(s, op("get-blob", http.MethodGet, "/api/v1/apps/{app}/blobs/{sha256}",
		"Whether this app holds an uploaded file, so a client can skip uploading it again", "packages", 0), s.getBlob)
}

type appBody struct {
	Body *mds.App
}

type appsInput struct {
	Paging
}

type appsBody struct {
	Body api.Apps
}

// listApps pages through the apps the caller can see: pages of the store
// are filtered until one of the asked size is full.
func (s *Server) listApps(ctx context.Context, in *appsInput) (*appsBody, error) {
	t := caller(ctx)
	p := in.page()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := &appsBody{Body: api.Apps{Apps: []*mds.App{}}}
	for {
		apps, err := s.store.ListApps(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, a := range apps {
			if t.Can(a.ID, mds.RoleViewer) {
				out.Body.Apps = append(out.Body.Apps, a)
				if len(out.Body.Apps) == in.Limit {
					out.Body.Next = a.Slug
					return out, nil
				}
			}
		}
		if len(apps) < p.Limit {
			return out, nil
		}
		p.After = apps[len(apps)-1].Slug
	}
}

type createAppInput struct {
	Body api.CreateApp
}

func (s *Server) createApp(ctx context.Context, in *createAppInput) (*appBody, error) {
	if !caller(ctx).Admin {
		return nil, mds.Errorf(mds.EFORBIDDEN, "only an admin token creates apps")
	}
	a := &mds.App{Slug: in.Body.Slug, Name: in.Body.Name, Platforms: in.Body.Platforms, Key: mds.NewAppKey()}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateApp(ctx, a); err != nil {
		return nil, err
	}
	s.log.Info("app created", "app", a.Slug, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &appBody{Body: a}, nil
}

func (s *Server) getApp(ctx context.Context, in *appPath) (*appBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	return &appBody{Body: a}, nil
}

type updateAppInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.UpdateApp
}

func (s *Server) updateApp(ctx context.Context, in *updateAppInput) (*appBody, error) {
	return s.changeApp(ctx, in.App, "app updated", func(a *mds.App) error {
		b := in.Body
		if b.Slug != nil {
			a.Slug = *b.Slug
		}
		if b.Name != nil {
			a.Name = *b.Name
		}
		if b.Platforms != nil {
			a.Platforms = b.Platforms
		}
		return a.Validate()
	})
}

func (s *Server) rotateKey(ctx context.Context, in *appPath) (*appBody, error) {
	return s.changeApp(ctx, in.App, "app key rotated", func(a *mds.App) error {
		if a.PreviousKey != "" {
			return mds.Errorf(mds.ECONFLICT, "app %q still accepts its previous key; retire it first (DELETE /api/v1/apps/%s/key/previous), "+
				"once no installed build sends it", a.Slug, a.Slug)
		}
		a.PreviousKey, a.Key = a.Key, mds.NewAppKey()
		return nil
	})
}

func (s *Server) retireKey(ctx context.Context, in *appPath) (*appBody, error) {
	return s.changeApp(ctx, in.App, "previous app key retired", func(a *mds.App) error {
		if a.PreviousKey == "" {
			return mds.Errorf(mds.ECONFLICT, "app %q has no previous key to retire", a.Slug)
		}
		a.PreviousKey = ""
		return nil
	})
}

// changeApp applies change to an app the caller administers, logs what and
// makes it visible to devices.
func (s *Server) changeApp(ctx context.Context, slug, what string, change func(*mds.App) error) (*appBody, error) {
	a, err := s.appFor(ctx, slug, mds.RoleAdmin)
	if err != nil {
		return nil, err
	}
	a, err = s.store.UpdateApp(ctx, a.ID, change)
	if err != nil {
		return nil, err
	}
	s.log.Info(what, "app", a.Slug, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &appBody{Body: a}, nil
}

func (s *Server) deleteApp(ctx context.Context, in *appPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	if !caller(ctx).Admin {
		return nil, mds.Errorf(mds.EFORBIDDEN, "only an admin token deletes apps")
	}
	if err := s.store.DeleteApp(ctx, a.ID); err != nil {
		return nil, err
	}
	s.log.Info("app deleted", "app", a.Slug, "by", caller(ctx).Name)
	s.refresh(ctx)
	return nil, nil
}

type blobPath struct {
	App    string `path:"app" doc:"App slug"`
	SHA256 string `path:"sha256" doc:"Hex SHA-256 of the file"`
}

type blobBody struct {
	Body api.Blob
}

// getBlob answers only for files this app uploaded: content is shared
// between apps in storage, ownership is not.
func (s *Server) getBlob(ctx context.Context, in *blobPath) (*blobBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	if !mds.ValidSHA256(in.SHA256) {
		return nil, mds.Errorf(mds.EINVALID, "%q is not a sha256: expected 64 lowercase hex digits", in.SHA256)
	}
	b, err := s.store.FindBlob(ctx, a.ID, in.SHA256)
	if err != nil {
		return nil, err
	}
	return &blobBody{Body: api.Blob{SHA256: b.SHA256, Size: b.Size}}, nil
}
