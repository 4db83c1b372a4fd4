package httpapi

import (
	"context"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
)

type callerKey struct{}

// caller returns the token a management request authenticated with.
func caller(ctx context.Context) *mds.Token {
	t, _ := ctx.Value(callerKey{}).(*mds.Token)
	return t
}

// bearerSecurity marks an operation as needing a token, in OpenAPI and for
// the authenticate middleware.
var bearerSecurity = []map[string][]string{{"bearer": {}}}

// tokenFor resolves an Authorization header to a live token.
func (s *Server) tokenFor(ctx context.Context, header string) (*mds.Token, error) {
	// The scheme is case-insensitive (RFC 9110 §11.1).
	scheme, secret, ok := strings.Cut(strings.TrimSpace(header), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, mds.Errorf(mds.EUNAUTHORIZED, "send a token as Authorization: Bearer <token>")
	}
	t, err := s.store.FindTokenByHash(ctx, mds.HashToken(secret))
	if mds.ErrorCode(err) == mds.ENOTFOUND {
		return nil, mds.Errorf(mds.EUNAUTHORIZED, "the token is not valid: it was revoked, mistyped, or belongs to another deployment")
	}
	if err != nil {
		return nil, err
	}
	if t.Expired(s.now()) {
		return nil, mds.Errorf(mds.EUNAUTHORIZED, "token %q expired at %s; create a new one", t.Name, t.ExpiresAt.Format("2006-01-02 15:04 MST"))
	}
	return t, nil
}

// authenticate is the huma middleware that admits management calls. Every
// operation registered with huma needs a token; the OpenAPI documents are
// served by huma outside the middleware chain, and device endpoints are not
// huma operations at all.
func (s *Server) authenticate(ctx huma.Context, next func(huma.Context)) {
	t, err := s.tokenFor(ctx.Context(), ctx.Header("Authorization"))
	if err != nil {
		if mds.ErrorCode(err) == mds.EUNAUTHORIZED {
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="mds"`)
		}
		p := s.errorFor("authenticate", err)
		huma.WriteErr(s.api, ctx, p.Status, p.Detail)
		return
	}
	next(huma.WithContext(ctx, contextWithCaller(ctx.Context(), t)))
}

// appFor finds the app named slug and checks that the caller holds need on
// it. An app the caller cannot see at all is reported as not found, so a
// token cannot probe which apps exist.
func (s *Server) appFor(ctx context.Context, slug string, need mds.Role) (*mds.App, error) {
	t := caller(ctx)
	a, err := s.store.FindApp(ctx, slug)
	if err != nil {
		return nil, err
	}
	if !t.Can(a.ID, mds.RoleViewer) {
		return nil, mds.Errorf(mds.ENOTFOUND, "app %q not found", slug)
	}
	if !t.Can(a.ID, need) {
		return nil, mds.Errorf(mds.EFORBIDDEN, "token %q may not do this on app %q: it needs the %s role", t.Name, slug, need)
	}
	return a, nil
}

func contextWithCaller(ctx context.Context, t *mds.Token) context.Context {
	return context.WithValue(ctx, callerKey{}, t)
}
