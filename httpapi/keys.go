package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/signing"
)

// Keys: the public keys app teams sign hotpatches with, registered per
// app, and the deployment's own public keys, which sign answers.

func (s *Server) registerKeys() {
	register(s, op("add-team-key", http.MethodPost, "/api/v1/apps/{app}/keys",
		"Register a team public key: hotpatches signed by it are accepted", "keys", 201), s.addTeamKey)
	register(s, op("list-team-keys", http.MethodGet, "/api/v1/apps/{app}/keys", "List an app's team keys, retired ones too", "keys", 0), s.listTeamKeys)
	register(s, op("retire-team-key", http.MethodPost, "/api/v1/apps/{app}/keys/{id}/retire",
		"Retire a team key for good: hotpatches signed by it are refused from now on", "keys", 0), s.retireTeamKey)
	register(s, op("server-keys", http.MethodGet, "/api/v1/server-keys",
		"The public keys that sign check answers, for app builds to trust", "keys", 0), s.serverKeys)
}

type teamKeyBody struct {
	Body *mds.TeamKey
}

type addTeamKeyInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.AddTeamKey
}

func (s *Server) addTeamKey(ctx context.Context, in *addTeamKeyInput) (*teamKeyBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleAdmin)
	if err != nil {
		return nil, err
	}
	pub, err := signing.ParsePublicKeyPEM([]byte(in.Body.PublicKey))
	if err != nil {
		return nil, mds.Errorf(mds.EINVALID, "public_key: %v", err)
	}
	name := strings.TrimSpace(in.Body.Name)
	if err := mds.ValidText("key name", name, 200, false); err != nil {
		return nil, err
	}
	actor := caller(ctx).Name
	k := &mds.TeamKey{ID: pub.ID(), AppID: a.ID, Alg: string(pub.Alg()), PEM: string(pub.MarshalPEM()), Name: name, CreatedBy: actor}
	if err := s.store.AddTeamKey(ctx, k); err != nil {
		return nil, err
	}
	s.log.Info("team key added", "app", a.Slug, "key", k.ID, "alg", k.Alg, "by", actor)
	return &teamKeyBody{Body: k}, nil
}

type teamKeysBody struct {
	Body api.TeamKeys
}

func (s *Server) listTeamKeys(ctx context.Context, in *appPath) (*teamKeysBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	keys, err := s.store.ListTeamKeys(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	return &teamKeysBody{Body: api.TeamKeys{Keys: nonNil(keys)}}, nil
}

type teamKeyPath struct {
	App string `path:"app" doc:"App slug"`
	ID  string `path:"id" doc:"Key ID: 64 hex digits, as mds keys list shows"`
}

func (s *Server) retireTeamKey(ctx context.Context, in *teamKeyPath) (*teamKeyBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleAdmin)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Name
	k, err := s.store.RetireTeamKey(ctx, a.ID, in.ID, actor)
	if err != nil {
		return nil, err
	}
	s.log.Info("team key retired", "app", a.Slug, "key", k.ID, "by", actor)
	return &teamKeyBody{Body: k}, nil
}

type serverKeysBody struct {
	Body api.ServerKeys
}

// serverKeys needs a valid token, of any role: the keys are public, but
// the management API shows nothing to strangers.
func (s *Server) serverKeys(ctx context.Context, _ *struct{}) (*serverKeysBody, error) {
	out := api.ServerKeys{Keys: []api.ServerKey{}}
	for _, k := range s.answers.signer.keys {
		pub := k.Public()
		out.Keys = append(out.Keys, api.ServerKey{ID: pub.ID(), Alg: string(pub.Alg()), PublicKey: string(pub.MarshalPEM())})
	}
	return &serverKeysBody{Body: out}, nil
}
