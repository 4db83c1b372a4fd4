package httpapi

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/config"
	"github.com/mds-dev/mds/delivery"
)

// Remote configuration's management: namespaces' versions (every write a
// new version for every device), their history, diffs and rollbacks, and
// gray changes, which are packages of kind config released by tasks.

func (s *Server) registerConfig() {
	register(s, op("get-config", http.MethodGet, "/api/v1/apps/{app}/config",
		"The current version of each of an app's namespaces, with its keys", "config", 0), s.getConfig)
	edit := op("edit-config", http.MethodPost, "/api/v1/apps/{app}/config",
		"Set and delete keys of namespaces: a new version of each namespace changed, for every device at once (under the gray changes in force for it)", "config", 201)
	edit.MaxBodyBytes = maxConfigRequest
	register(s, edit, s.editConfig)
	register(s, op("get-config-version", http.MethodGet, "/api/v1/apps/{app}/config/{namespace}",
		"A version of a namespace with its keys: the current one unless version is given", "config", 0), s.getConfigVersion)
	register(s, op("config-history", http.MethodGet, "/api/v1/apps/{app}/config/{namespace}/versions",
		"A namespace's versions, newest first, without their keys", "config", 0), s.configHistory)
	register(s, op("config-diff", http.MethodGet, "/api/v1/apps/{app}/config/{namespace}/diff",
		"How a namespace differs from one version to another", "config", 0), s.configDiff)
	register(s, op("config-rollback", http.MethodPost, "/api/v1/apps/{app}/config/{namespace}/rollback",
		"Make a new version of a namespace that holds what an earlier version held", "config", 201), s.configRollback)
	change := op("create-config-change", http.MethodPost, "/api/v1/apps/{app}/config/changes",
		"Describe a gray change of a namespace: a package of kind config, which a task releases to its audience (create one with its package_id)", "config", 201)
	change.MaxBodyBytes = maxConfigRequest
	register(s, change, s.createConfigChange)
}

// maxConfigRequest bounds a request that writes configuration: the
// bytes an app may hold (mds.MaxConfigBytes), written as JSON, whose
// escapes may double them, and the request's own members.
const maxConfigRequest = 2*mds.MaxConfigBytes + 1<<20

type configVersionsBody struct {
	Body api.ConfigVersions
}

func (s *Server) getConfig(ctx context.Context, in *appPath) (*configVersionsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	list, err := s.store.CurrentConfig(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return &configVersionsBody{Body: api.ConfigVersions{Versions: nonNil(list)}}, nil
}

type editConfigInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.EditConfig
}

func (s *Server) editConfig(ctx context.Context, in *editConfigInput) (*configVersionsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	if len(in.Body.Namespaces) == 0 {
		return nil, mds.Errorf(mds.EINVALID, "name at least one namespace to edit")
	}
	if len(in.Body.Namespaces) > mds.MaxConfigNamespaces {
		return nil, mds.Errorf(mds.EINVALID, "a write edits at most %d namespaces", mds.MaxConfigNamespaces)
	}
	var edits []mds.ConfigEdit
	for _, ns := range slices.Sorted(maps.Keys(in.Body.Namespaces)) {
		e := in.Body.Namespaces[ns]
		cur, curNumber, err := s.currentKeys(ctx, a.ID, ns)
		if err != nil {
			return nil, err
		}
		set, err := resolveKeys(ns, cur, e.Set)
		if err != nil {
			return nil, err
		}
		edit := mds.ConfigEdit{Namespace: ns, Base: e.Base, Set: set, Delete: e.Delete, Replace: e.Replace}
		if edit.Base == nil && inherits(e.Set) {
			// Keys were completed from the version just read: a version
			// made since (with a schema added, say) is not undone.
			edit.Base = &curNumber
		}
		if err := edit.Validate(); err != nil {
			return nil, err
		}
		if err := config.CheckKeys(ns, edit.Set); err != nil {
			return nil, err
		}
		edits = append(edits, edit)
	}
	if err := mds.ValidText("message", in.Body.Message, mds.MaxConfigMessage, true); err != nil {
		return nil, err
	}
	return s.writeConfig(ctx, a, in.Body.Message, edits)
}

// writeConfig makes the versions edits lead to, and has this node's
// snapshot follow.
func (s *Server) writeConfig(ctx context.Context, a *mds.App, message string, edits []mds.ConfigEdit) (*configVersionsBody, error) {
	actor := caller(ctx).Name
	versions, err := s.store.EditConfig(ctx, a.ID, actor, message, edits)
	if err != nil {
		return nil, err
	}
	for _, v := range versions {
		s.log.Info("config version created", "app", a.Slug, "namespace", v.Namespace, "version", v.Number, "keys", v.KeyCount, "by", actor)
	}
	if len(versions) > 0 {
		s.refresh(ctx)
	}
	return &configVersionsBody{Body: api.ConfigVersions{Versions: nonNil(versions)}}, nil
}

// currentKeys are the keys and number of namespace ns's current version;
// none and 0 for a namespace without versions.
func (s *Server) currentKeys(ctx context.Context, appID int64, ns string) (mds.ConfigKeys, int64, error) {
	if err := mds.ValidConfigNamespace(ns); err != nil {
		return nil, 0, err
	}
	v, err := s.store.FindConfigVersion(ctx, appID, ns, 0)
	switch {
	case mds.ErrorCode(err) == mds.ENOTFOUND:
		return mds.ConfigKeys{}, 0, nil
	case err != nil:
		return nil, 0, err
	}
	return v.Keys, v.Number, nil
}

// inherits reports whether a key of set takes its type, schema and
// description from the current version (resolveKeys).
func inherits(set map[string]api.SetKey) bool {
	for _, k := range set {
		if k.Type == "" {
			return true
		}
	}
	return false
}

// resolveKeys turns keys as a write gives them into keys of namespace ns:
// one without a type keeps the type, schema and description it has in
// cur, the namespace's current keys. Values are made canonical.
func resolveKeys(ns string, cur mds.ConfigKeys, in map[string]api.SetKey) (mds.ConfigKeys, error) {
	out := make(mds.ConfigKeys, len(in))
	for name, k := range in {
		key := mds.ConfigKey{Type: k.Type, Value: k.Value, Schema: k.Schema, Description: k.Description}
		if k.Type == "" {
			old, ok := cur[name]
			if !ok {
				return nil, mds.Errorf(mds.EINVALID, "%s.%s is a new key: give its type (string, integer, float, boolean or json)", ns, name)
			}
			if len(k.Schema) > 0 || k.Description != "" {
				return nil, mds.Errorf(mds.EINVALID, "%s.%s: give the type with a schema or description, which then replace the key's", ns, name)
			}
			key.Type, key.Schema, key.Description = old.Type, old.Schema, old.Description
		}
		if err := key.Validate(name); err != nil {
			return nil, mds.Errorf(mds.EINVALID, "namespace %s: %s", ns, mds.ErrorMessage(err))
		}
		out[name] = key
	}
	return out, nil
}

type configVersionInput struct {
	App       string `path:"app" doc:"App slug"`
	Namespace string `path:"namespace"`
	Version   int64  `query:"version" minimum:"0" doc:"The version; the current one when 0 or absent"`
}

type configVersionBody struct {
	Body *mds.ConfigVersion
}

func (s *Server) getConfigVersion(ctx context.Context, in *configVersionInput) (*configVersionBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	v, err := s.store.FindConfigVersion(ctx, a.ID, in.Namespace, in.Version)
	if err != nil {
		return nil, err
	}
	return &configVersionBody{Body: v}, nil
}

type configHistoryInput struct {
	App       string `path:"app" doc:"App slug"`
	Namespace string `path:"namespace"`
	Paging
}

func (s *Server) configHistory(ctx context.Context, in *configHistoryInput) (*configVersionsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListConfigVersions(ctx, a.ID, in.Namespace, in.page())
	if err != nil {
		return nil, err
	}
	if len(list) == 0 && in.After == "" {
		return nil, mds.Errorf(mds.ENOTFOUND, "namespace %s has no versions in this app", in.Namespace)
	}
	out := &configVersionsBody{Body: api.ConfigVersions{Versions: nonNil(list)}}
	out.Body.Next = next(len(list), in.Limit, func() string { return strconv.FormatInt(list[len(list)-1].Number, 10) })
	return out, nil
}

type configDiffInput struct {
	App       string `path:"app" doc:"App slug"`
	Namespace string `path:"namespace"`
	From      int64  `query:"from" minimum:"1" required:"true" doc:"The earlier version"`
	To        int64  `query:"to" minimum:"0" doc:"The later version; the current one when 0 or absent"`
}

type configDiffBody struct {
	Body api.ConfigDiff
}

func (s *Server) configDiff(ctx context.Context, in *configDiffInput) (*configDiffBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	from, err := s.store.FindConfigVersion(ctx, a.ID, in.Namespace, in.From)
	if err != nil {
		return nil, err
	}
	to, err := s.store.FindConfigVersion(ctx, a.ID, in.Namespace, in.To)
	if err != nil {
		return nil, err
	}
	return &configDiffBody{Body: api.ConfigDiff{Namespace: in.Namespace, From: from.Number, To: to.Number,
		Keys: api.DiffKeys(from.Keys, to.Keys, mds.ConfigKey.Equal)}}, nil
}

type configRollbackInput struct {
	App       string `path:"app" doc:"App slug"`
	Namespace string `path:"namespace"`
	Body      api.Rollback
}

func (s *Server) configRollback(ctx context.Context, in *configRollbackInput) (*configVersionsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	msg := in.Body.Message
	if msg == "" {
		msg = "roll back to version " + strconv.FormatInt(in.Body.To, 10)
	}
	if err := mds.ValidText("message", msg, mds.MaxConfigMessage, true); err != nil {
		return nil, err
	}
	return s.writeConfig(ctx, a, msg, []mds.ConfigEdit{{Namespace: in.Namespace, Restore: in.Body.To}})
}

type configChangeInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.ConfigChange
}

func (s *Server) createConfigChange(ctx context.Context, in *configChangeInput) (*packageBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	b := in.Body
	if err := mds.ValidConfigNamespace(b.Namespace); err != nil {
		return nil, err
	}
	cur, err := s.store.FindConfigVersion(ctx, a.ID, b.Namespace, 0)
	switch {
	case mds.ErrorCode(err) == mds.ENOTFOUND:
		cur = &mds.ConfigVersion{Namespace: b.Namespace, Keys: mds.ConfigKeys{}}
	case err != nil:
		return nil, err
	}
	set, err := resolveKeys(b.Namespace, cur.Keys, b.Set)
	if err != nil {
		return nil, err
	}
	spec := &mds.ConfigSpec{Namespace: b.Namespace, Base: cur.Number, Set: set, Delete: b.Delete, Message: b.Message}
	p := &mds.Artifact{AppID: a.ID, Kind: mds.KindConfig, Version: strconv.FormatInt(cur.Number, 10), Spec: spec, CreatedBy: caller(ctx).Name}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := config.CheckKeys(b.Namespace, spec.Set); err != nil {
		return nil, err
	}
	if err := s.store.CreateArtifact(ctx, p); err != nil {
		return nil, err
	}
	s.log.Info("config change created", "app", a.Slug, "package", p.ID, "namespace", b.Namespace, "keys", len(set)+len(b.Delete), "by", p.CreatedBy)
	return &packageBody{Body: api.NewPackage(p)}, nil
}

// explainConfig is what the device of ch would see of each namespace,
// and where each value comes from.
func explainConfig(ch delivery.ConfigChoice) []api.ExplainedNamespace {
	out := []api.ExplainedNamespace{}
	if ch.Config == nil {
		return out
	}
	for i := range ch.Config.Namespaces {
		n := &ch.Config.Namespaces[i]
		values, from := effective(ch.Config, n, ch.Admitted)
		e := api.ExplainedNamespace{Namespace: n.Name, Version: n.Number(), Gray: []int64{}, Keys: []api.ExplainedKey{}}
		for _, c := range ch.Config.Of(n, ch.Admitted) {
			e.Gray = append(e.Gray, c.Task.ID)
		}
		names := map[string]bool{}
		for k := range values {
			names[k] = true
		}
		for k := range from {
			names[k] = true // deleted by a change too
		}
		for _, k := range slices.Sorted(maps.Keys(names)) {
			key := api.ExplainedKey{Key: k, Value: values[k], Version: e.Version}
			if src, ok := from[k]; ok {
				key.TaskID, key.Version = src.Task, 0
			}
			key.Deleted = values[k] == nil
			e.Keys = append(e.Keys, key)
		}
		out = append(out, e)
	}
	return out
}
