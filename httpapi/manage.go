package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// registerManagement declares every JSON management operation. Handlers
// translate between API shapes and domain types; rules live in the domain.
func (s *Server) registerManagement() {
	op := func(id, method, path, summary, tag string, status int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary,
			Tags: []string{tag}, Security: bearerSecurity, DefaultStatus: status}
	}
	huma.Register(s.api, op("list-apps", http.MethodGet, "/api/v1/apps", "List the apps this token can see", "apps", 0), s.listApps)
	huma.Register(s.api, op("create-app", http.MethodPost, "/api/v1/apps", "Create an app (admin token)", "apps", 201), s.createApp)
	huma.Register(s.api, op("get-app", http.MethodGet, "/api/v1/apps/{app}", "Get an app", "apps", 0), s.getApp)

	huma.Register(s.api, op("get-blob", http.MethodGet, "/api/v1/apps/{app}/blobs/{sha256}",
		"Whether the server holds a file, so a client can skip uploading it again", "packages", 0), s.getBlob)
	huma.Register(s.api, op("create-package", http.MethodPost, "/api/v1/apps/{app}/packages",
		"Describe a package: an uploaded blob, an external URL or a store link", "packages", 201), s.createPackage)
	huma.Register(s.api, op("list-packages", http.MethodGet, "/api/v1/apps/{app}/packages", "List an app's packages, newest first", "packages", 0), s.listPackages)
	huma.Register(s.api, op("get-package", http.MethodGet, "/api/v1/apps/{app}/packages/{id}", "Get a package", "packages", 0), s.getPackage)

	huma.Register(s.api, op("create-task", http.MethodPost, "/api/v1/apps/{app}/tasks",
		"Create a release task for a package, optionally releasing it at once", "tasks", 201), s.createTask)
	huma.Register(s.api, op("list-tasks", http.MethodGet, "/api/v1/apps/{app}/tasks", "List an app's tasks, newest first", "tasks", 0), s.listTasks)
	huma.Register(s.api, op("get-task", http.MethodGet, "/api/v1/apps/{app}/tasks/{id}", "Get a task", "tasks", 0), s.getTask)
	huma.Register(s.api, op("act-on-task", http.MethodPost, "/api/v1/apps/{app}/tasks/{id}/{action}",
		"Release, promote (gray to official), pause, resume or stop a task; devices see the change at their next check", "tasks", 0), s.actOnTask)
	huma.Register(s.api, op("task-history", http.MethodGet, "/api/v1/apps/{app}/tasks/{id}/history", "A task's history, oldest first", "tasks", 0), s.taskHistory)

	huma.Register(s.api, op("create-token", http.MethodPost, "/api/v1/tokens",
		"Create a token; its secret is in this response only", "tokens", 201), s.createToken)
	huma.Register(s.api, op("list-tokens", http.MethodGet, "/api/v1/tokens", "List the tokens this token administers", "tokens", 0), s.listTokens)
	huma.Register(s.api, op("delete-token", http.MethodDelete, "/api/v1/tokens/{id}", "Revoke a token", "tokens", 204), s.deleteToken)
	huma.Register(s.api, op("whoami", http.MethodGet, "/api/v1/token", "The token making this call", "tokens", 0), s.whoami)
}

// ---- apps

type appPath struct {
	App string `path:"app" doc:"App slug"`
}

type appBody struct {
	Body *mds.App
}

type appsBody struct {
	Body struct {
		Apps []*mds.App `json:"apps"`
	}
}

func (s *Server) listApps(ctx context.Context, _ *struct{}) (*appsBody, error) {
	apps, err := s.store.ListApps(ctx)
	if err != nil {
		return nil, s.humaError("list-apps", err)
	}
	t := caller(ctx)
	out := &appsBody{}
	out.Body.Apps = []*mds.App{}
	for _, a := range apps {
		if t.Can(a.ID, mds.RoleViewer) {
			out.Body.Apps = append(out.Body.Apps, a)
		}
	}
	return out, nil
}

type createAppInput struct {
	Body struct {
		Slug      string         `json:"slug" doc:"Unique URL-safe name, e.g. shop" example:"shop"`
		Name      string         `json:"name,omitempty" doc:"Display name; defaults to the slug"`
		Platforms []mds.Platform `json:"platforms" minItems:"1" doc:"Any of android, ios, harmony"`
	}
}

func (s *Server) createApp(ctx context.Context, in *createAppInput) (*appBody, error) {
	if !caller(ctx).Admin {
		return nil, s.humaError("create-app", mds.Errorf(mds.EFORBIDDEN, "only an admin token creates apps"))
	}
	a := &mds.App{Slug: in.Body.Slug, Name: in.Body.Name, Platforms: in.Body.Platforms, Key: mds.NewAppKey()}
	if err := a.Validate(); err != nil {
		return nil, s.humaError("create-app", err)
	}
	if err := s.store.CreateApp(ctx, a); err != nil {
		return nil, s.humaError("create-app", err)
	}
	s.log.Info("app created", "app", a.Slug, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &appBody{Body: a}, nil
}

func (s *Server) getApp(ctx context.Context, in *appPath) (*appBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("get-app", err)
	}
	return &appBody{Body: a}, nil
}

// ---- packages

type blobPath struct {
	App    string `path:"app" doc:"App slug"`
	SHA256 string `path:"sha256" doc:"Hex SHA-256 of the file"`
}

type blobBody struct {
	Body uploadedBlob
}

func (s *Server) getBlob(ctx context.Context, in *blobPath) (*blobBody, error) {
	if _, err := s.appFor(ctx, in.App, mds.RoleReleaser); err != nil {
		return nil, s.humaError("get-blob", err)
	}
	b, err := s.blobs.Stat(ctx, in.SHA256)
	if err != nil {
		return nil, s.humaError("get-blob", err)
	}
	return &blobBody{Body: uploadedBlob{SHA256: b.SHA256, Size: b.Size}}, nil
}

type packageInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		Platform    mds.Platform      `json:"platform" enum:"android,ios,harmony"`
		Version     string            `json:"version" maxLength:"64" doc:"Version name, e.g. 2.4.0" example:"2.4.0"`
		Build       int64             `json:"build,omitempty" minimum:"0" doc:"Build number (Android versionCode, iOS CFBundleVersion)"`
		Notes       string            `json:"notes,omitempty" maxLength:"8192" doc:"Release notes shown to users; multi-line"`
		Source      mds.Source        `json:"source,omitempty" enum:"blob,url,store" doc:"blob (uploaded; the default without url), url (hosted elsewhere; the default with url) or store (a store page)"`
		SHA256      string            `json:"sha256,omitempty" doc:"Hex SHA-256 of the file; required for blob, recommended for url"`
		Size        int64             `json:"size,omitempty" minimum:"0" doc:"Bytes; taken from the blob when uploaded"`
		URL         string            `json:"url,omitempty" doc:"Download URL (url) or store link (store)"`
		FileName    string            `json:"file_name,omitempty" maxLength:"255"`
		AppVersions []version.Range   `json:"app_versions,omitempty" doc:"Installed versions that may take this package; none means any older version"`
		Channel     string            `json:"channel,omitempty" doc:"Only devices of this channel"`
		Network     mds.NetworkPolicy `json:"network,omitempty" enum:"any,wifi" doc:"Where devices may download it; default any"`
		Silent      bool              `json:"silent,omitempty" doc:"Download in the background before asking"`
		Enterprise  bool              `json:"enterprise,omitempty" doc:"iOS in-house build installed over the air (itms-services)"`
		BundleID    string            `json:"bundle_id,omitempty" doc:"Bundle identifier; required for enterprise builds"`
		Title       string            `json:"title,omitempty" doc:"Install prompt title for enterprise builds; defaults to the app name"`
	}
}

type packageBody struct {
	Body *mds.Package
}

type packagesBody struct {
	Body struct {
		Packages []*mds.Package `json:"packages"`
	}
}

func (s *Server) createPackage(ctx context.Context, in *packageInput) (*packageBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("create-package", err)
	}
	b := in.Body
	p := &mds.Package{
		AppID: a.ID, Platform: b.Platform, Version: b.Version, Build: b.Build, Notes: b.Notes, Source: b.Source,
		SHA256: b.SHA256, Size: b.Size, URL: b.URL, FileName: b.FileName, AppVersions: b.AppVersions,
		Channel: b.Channel, Network: b.Network, Silent: b.Silent, Enterprise: b.Enterprise,
		BundleID: b.BundleID, Title: b.Title, CreatedBy: caller(ctx).Name,
	}
	if p.Source == "" {
		p.Source = mds.SourceBlob
		if p.URL != "" {
			p.Source = mds.SourceURL
		}
	}
	if err := p.Validate(); err != nil {
		return nil, s.humaError("create-package", err)
	}
	if !a.HasPlatform(p.Platform) {
		return nil, s.humaError("create-package", mds.Errorf(mds.EINVALID, "app %q does not ship on %s; its platforms are %v", a.Slug, p.Platform, a.Platforms))
	}
	if p.Source == mds.SourceBlob {
		blob, err := s.blobs.Stat(ctx, p.SHA256)
		if mds.ErrorCode(err) == mds.ENOTFOUND {
			err = mds.Errorf(mds.EINVALID, "no uploaded file has sha256 %s; upload it first (POST /api/v1/apps/%s/blobs)", p.SHA256, a.Slug)
		}
		if err != nil {
			return nil, s.humaError("create-package", err)
		}
		if p.Size != 0 && p.Size != blob.Size {
			return nil, s.humaError("create-package", mds.Errorf(mds.EINVALID, "size %d does not match the uploaded file's %d bytes", p.Size, blob.Size))
		}
		p.Size = blob.Size
	}
	if err := s.store.CreatePackage(ctx, p); err != nil {
		return nil, s.humaError("create-package", err)
	}
	s.log.Info("package created", "app", a.Slug, "package", p.ID, "version", p.Version, "by", p.CreatedBy)
	return &packageBody{Body: p}, nil
}

func (s *Server) listPackages(ctx context.Context, in *appPath) (*packagesBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("list-packages", err)
	}
	list, err := s.store.ListPackages(ctx, a.ID)
	if err != nil {
		return nil, s.humaError("list-packages", err)
	}
	out := &packagesBody{}
	out.Body.Packages = nonNil(list)
	return out, nil
}

type objectPath struct {
	App string `path:"app" doc:"App slug"`
	ID  int64  `path:"id"`
}

func (s *Server) getPackage(ctx context.Context, in *objectPath) (*packageBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("get-package", err)
	}
	p, err := s.store.FindPackage(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("get-package", err)
	}
	return &packageBody{Body: p}, nil
}

// ---- tasks

// taskView is a task as the API shows it, with what it delivers.
type taskView struct {
	ID                    int64           `json:"id"`
	App                   string          `json:"app"`
	PackageID             int64           `json:"package_id"`
	Platform              mds.Platform    `json:"platform"`
	Version               string          `json:"version"`
	Kind                  mds.Kind        `json:"kind"`
	Mode                  mds.UpgradeMode `json:"mode"`
	RemindIntervalSeconds int64           `json:"remind_interval_seconds,omitempty"`
	Status                mds.Status      `json:"status"`
	Stage                 mds.Stage       `json:"stage"`
	Targeting             mds.Targeting   `json:"targeting"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
	CreatedBy             string          `json:"created_by"`
}

func newTaskView(a *mds.App, t *mds.Task, p *mds.Package) *taskView {
	v := &taskView{
		ID: t.ID, App: a.Slug, PackageID: t.PackageID, Kind: t.Kind, Mode: t.Mode,
		RemindIntervalSeconds: int64(t.RemindInterval / time.Second), Status: t.Status, Stage: t.Stage, Targeting: t.Targeting,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, CreatedBy: t.CreatedBy,
	}
	if p != nil {
		v.Platform, v.Version = p.Platform, p.Version
	}
	return v
}

type taskBody struct {
	Body *taskView
}

type createTaskInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		PackageID             int64           `json:"package_id" doc:"The package to deliver"`
		Mode                  mds.UpgradeMode `json:"mode" enum:"single,multiple,force" doc:"single: remind once per interval; multiple: at every check; force: block until upgraded"`
		RemindIntervalSeconds int64           `json:"remind_interval_seconds,omitempty" minimum:"0" doc:"For single mode; default 259200 (3 days)"`
		Targeting             mds.Targeting   `json:"targeting,omitempty" doc:"Who gets it: rules (ANDed) and, for a gray release, gates (whitelists, rollout, capped window; ORed). Without gates the task is official."`
		Release               bool            `json:"release,omitempty" doc:"Make it live right away, in its stage"`
	}
}

func (s *Server) createTask(ctx context.Context, in *createTaskInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("create-task", err)
	}
	p, err := s.store.FindPackage(ctx, a.ID, in.Body.PackageID)
	if err != nil {
		return nil, s.humaError("create-task", err)
	}
	tg := in.Body.Targeting
	tg.Salt = "" // the server picks the salt
	t := &mds.Task{AppID: a.ID, PackageID: p.ID, Mode: in.Body.Mode, Status: mds.StatusDraft,
		RemindInterval: time.Duration(in.Body.RemindIntervalSeconds) * time.Second, Targeting: tg}
	if err := t.Validate(); err != nil {
		return nil, s.humaError("create-task", err)
	}
	if _, err := compileRules(t.Targeting.Rules); err != nil {
		return nil, s.humaError("create-task", err)
	}
	actor := caller(ctx).Name
	if err := s.store.CreateTask(ctx, t, actor); err != nil {
		return nil, s.humaError("create-task", err)
	}
	if in.Body.Release {
		if t, err = s.store.UpdateTask(ctx, a.ID, t.ID, actor, apply(mds.ActionRelease)); err != nil {
			return nil, s.humaError("create-task", err)
		}
	}
	s.log.Info("task created", "app", a.Slug, "task", t.ID, "status", t.Status, "by", actor)
	s.refresh(ctx)
	return &taskBody{Body: newTaskView(a, t, p)}, nil
}

// apply is the UpdateTask change for a lifecycle action.
func apply(a mds.Action) func(*mds.Task) (string, error) {
	return func(t *mds.Task) (string, error) {
		return string(a), t.Apply(a)
	}
}

type listTasksInput struct {
	App    string     `path:"app" doc:"App slug"`
	Status mds.Status `query:"status" enum:"draft,live,paused,stopped" doc:"Only tasks in this status"`
}

type tasksBody struct {
	Body struct {
		Tasks []*taskView `json:"tasks"`
	}
}

func (s *Server) listTasks(ctx context.Context, in *listTasksInput) (*tasksBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("list-tasks", err)
	}
	tasks, err := s.store.ListTasks(ctx, a.ID, in.Status)
	if err != nil {
		return nil, s.humaError("list-tasks", err)
	}
	pkgs, err := s.store.ListPackages(ctx, a.ID)
	if err != nil {
		return nil, s.humaError("list-tasks", err)
	}
	byID := make(map[int64]*mds.Package, len(pkgs))
	for _, p := range pkgs {
		byID[p.ID] = p
	}
	out := &tasksBody{}
	out.Body.Tasks = []*taskView{}
	for _, t := range tasks {
		out.Body.Tasks = append(out.Body.Tasks, newTaskView(a, t, byID[t.PackageID]))
	}
	return out, nil
}

func (s *Server) getTask(ctx context.Context, in *objectPath) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("get-task", err)
	}
	t, err := s.store.FindTask(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("get-task", err)
	}
	return s.taskBody(ctx, a, t)
}

func (s *Server) taskBody(ctx context.Context, a *mds.App, t *mds.Task) (*taskBody, error) {
	p, err := s.store.FindPackage(ctx, a.ID, t.PackageID)
	if err != nil {
		return nil, s.humaError("task", err)
	}
	return &taskBody{Body: newTaskView(a, t, p)}, nil
}

type actionInput struct {
	App    string     `path:"app" doc:"App slug"`
	ID     int64      `path:"id"`
	Action mds.Action `path:"action" enum:"release,promote,pause,resume,stop"`
}

func (s *Server) actOnTask(ctx context.Context, in *actionInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("act-on-task", err)
	}
	actor := caller(ctx).Name
	t, err := s.store.UpdateTask(ctx, a.ID, in.ID, actor, apply(in.Action))
	if err != nil {
		return nil, s.humaError("act-on-task", err)
	}
	s.log.Info("task changed", "app", a.Slug, "task", t.ID, "action", in.Action, "status", t.Status, "by", actor)
	s.refresh(ctx)
	return s.taskBody(ctx, a, t)
}

type historyBody struct {
	Body struct {
		Events []*mds.TaskEvent `json:"events"`
	}
}

func (s *Server) taskHistory(ctx context.Context, in *objectPath) (*historyBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("task-history", err)
	}
	events, err := s.store.TaskEvents(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("task-history", err)
	}
	out := &historyBody{}
	out.Body.Events = nonNil(events)
	return out, nil
}

// ---- tokens

type createTokenInput struct {
	Body struct {
		Name   string `json:"name" doc:"Unique name; shown in task history as the actor" example:"ci-shop"`
		Admin  bool   `json:"admin,omitempty" doc:"Administer the whole deployment (only an admin may grant this)"`
		Grants []struct {
			App  string   `json:"app" doc:"App slug"`
			Role mds.Role `json:"role" enum:"viewer,releaser,admin"`
		} `json:"grants,omitempty"`
		ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty" minimum:"60" maximum:"315360000" doc:"Lifetime, at most 10 years; none means until revoked, or as long as the creating token lives"`
	}
}

type createdTokenBody struct {
	Body struct {
		Token  *mds.Token `json:"token"`
		Secret string     `json:"secret" doc:"The bearer secret. It is not stored and cannot be shown again."`
	}
}

func (s *Server) createToken(ctx context.Context, in *createTokenInput) (*createdTokenBody, error) {
	me := caller(ctx)
	t := &mds.Token{Name: in.Body.Name, Admin: in.Body.Admin, CreatedBy: me.Name}
	for _, g := range in.Body.Grants {
		a, err := s.store.FindApp(ctx, g.App)
		if err == nil && !me.Can(a.ID, mds.RoleViewer) {
			// Same answer as for a missing app: no probing which apps exist.
			err = mds.Errorf(mds.ENOTFOUND, "app %q not found", g.App)
		}
		if err != nil {
			return nil, s.humaError("create-token", err)
		}
		t.Grants = append(t.Grants, mds.Grant{AppID: a.ID, App: a.Slug, Role: g.Role})
	}
	switch {
	case in.Body.ExpiresInSeconds > 0:
		exp := s.now().Add(time.Duration(in.Body.ExpiresInSeconds) * time.Second).UTC().Truncate(time.Millisecond)
		t.ExpiresAt = &exp
	case me.ExpiresAt != nil:
		t.ExpiresAt = me.ExpiresAt // a token never outlives the one that made it
	}
	if err := t.Validate(); err != nil {
		return nil, s.humaError("create-token", err)
	}
	if err := me.MayCreate(t); err != nil {
		return nil, s.humaError("create-token", err)
	}
	secret := mds.NewTokenSecret()
	t.Hash = mds.HashToken(secret)
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, s.humaError("create-token", err)
	}
	s.log.Info("token created", "token", t.Name, "admin", t.Admin, "by", me.Name)
	out := &createdTokenBody{}
	out.Body.Token, out.Body.Secret = t, secret
	return out, nil
}

type tokensBody struct {
	Body struct {
		Tokens []*mds.Token `json:"tokens"`
	}
}

func (s *Server) listTokens(ctx context.Context, _ *struct{}) (*tokensBody, error) {
	me := caller(ctx)
	all, err := s.store.ListTokens(ctx)
	if err != nil {
		return nil, s.humaError("list-tokens", err)
	}
	out := &tokensBody{}
	out.Body.Tokens = []*mds.Token{}
	for _, t := range all {
		if t.ID == me.ID || me.MayManage(t) == nil {
			out.Body.Tokens = append(out.Body.Tokens, t)
		}
	}
	return out, nil
}

type tokenPath struct {
	ID int64 `path:"id"`
}

func (s *Server) deleteToken(ctx context.Context, in *tokenPath) (*struct{}, error) {
	me := caller(ctx)
	t, err := s.store.FindToken(ctx, in.ID)
	// A token the caller may not manage is reported as missing, so IDs
	// cannot be walked to learn about other apps' tokens.
	if err == nil && t.ID != me.ID && me.MayManage(t) != nil {
		err = mds.Errorf(mds.ENOTFOUND, "token %d not found", in.ID)
	}
	if err == nil {
		err = s.store.DeleteToken(ctx, t.ID)
	}
	if err != nil {
		return nil, s.humaError("delete-token", err)
	}
	s.log.Info("token revoked", "token", t.Name, "by", me.Name)
	return nil, nil
}

type tokenBody struct {
	Body *mds.Token
}

func (s *Server) whoami(ctx context.Context, _ *struct{}) (*tokenBody, error) {
	return &tokenBody{Body: caller(ctx)}, nil
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
