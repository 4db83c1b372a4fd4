package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

func (s *Server) registerTokens() {
	register(s, op("create-token", http.MethodPost, "/api/v1/tokens",
		"Create a token; its secret is in this response only", "tokens", 201), s.createToken)
	register(s, op("list-tokens", http.MethodGet, "/api/v1/tokens", "List the tokens this token administers", "tokens", 0), s.listTokens)
	register(s, op("delete-token", http.MethodDelete, "/api/v1/tokens/{id}", "Revoke a token", "tokens", 204), s.deleteToken)
	register(s, op("whoami", http.MethodGet, "/api/v1/token", "The token making this call", "tokens", 0), s.whoami)
}

type createTokenInput struct {
	Body api.CreateToken
}

type createdTokenBody struct {
	Body api.CreatedToken
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
			return nil, err
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
		return nil, err
	}
	if err := me.MayCreate(t); err != nil {
		return nil, err
	}
	secret := mds.NewTokenSecret()
	t.Hash = mds.HashToken(secret)
	if err := s.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	s.log.Info("token created", "token", t.Name, "admin", t.Admin, "by", me.Name)
	return &createdTokenBody{Body: api.CreatedToken{Token: t, Secret: secret}}, nil
}

type tokensInput struct {
	Paging
}

type tokensBody struct {
	Body api.Tokens
}

// listTokens pages through the tokens the caller may manage, and itself.
func (s *Server) listTokens(ctx context.Context, in *tokensInput) (*tokensBody, error) {
	me := caller(ctx)
	p := in.page()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out := &tokensBody{Body: api.Tokens{Tokens: []*mds.Token{}}}
	for {
		page, err := s.store.ListTokens(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			if t.ID == me.ID || me.MayManage(t) == nil {
				out.Body.Tokens = append(out.Body.Tokens, t)
				if len(out.Body.Tokens) == in.Limit {
					out.Body.Next = t.Name
					return out, nil
				}
			}
		}
		if len(page) < p.Limit {
			return out, nil
		}
		p.After = page[len(page)-1].Name
	}
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
		return nil, err
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
