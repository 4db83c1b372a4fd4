package mds

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"time"
)

// Role is what a token may do within one app. Roles are ordered: each
// includes everything the one before it may do.
type Role string

const (
	RoleViewer   Role = "viewer"   // read apps, packages, tasks and history
	RoleReleaser Role = "releaser" // upload packages, create and drive tasks
	RoleAdmin    Role = "admin"    // manage the app's tokens
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleReleaser:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Validate reports whether r is a known role.
func (r Role) Validate() error {
	if r.rank() == 0 {
		return Errorf(EINVALID, "role %q is not one of viewer, releaser, admin", string(r))
	}
	return nil
}

// Grant gives a token a role on one app.
type Grant struct {
	AppID int64  `json:"app_id"`
	App   string `json:"app"` // the app's slug, for people
	Role  Role   `json:"role"`
}

// Token is a management API credential. Only a hash of its secret is stored:
// the secret is shown once, when the token is created.
type Token struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Admin tokens administer the deployment: they create apps and act on
	// every app as an app admin would.
	Admin     bool       `json:"admin"`
	Grants    []Grant    `json:"grants"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	Hash      string     `json:"-"`
}

var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// Validate checks a token's name and grants.
func (t *Token) Validate() error {
	if !tokenNamePattern.MatchString(t.Name) {
		return Errorf(EINVALID, "token name %q must be 1-64 letters, digits or _ . @ -", t.Name)
	}
	if !t.Admin && len(t.Grants) == 0 {
		return Errorf(EINVALID, "a token needs a role on at least one app, or admin")
	}
	seen := map[int64]bool{}
	for _, g := range t.Grants {
		if err := g.Role.Validate(); err != nil {
			return err
		}
		if seen[g.AppID] {
			return Errorf(EINVALID, "app %s is granted twice; give each app one role", g.App)
		}
		seen[g.AppID] = true
	}
	return nil
}

// Can reports whether t holds at least role need on app appID.
func (t *Token) Can(appID int64, need Role) bool {
	if t.Admin {
		return true
	}
	for _, g := range t.Grants {
		if g.AppID == appID {
			return g.Role.rank() >= need.rank()
		}
	}
	return false
}

// Expired reports whether t is past its expiry at now.
func (t *Token) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// MayManage reports whether t may see and revoke token n: only an admin
// manages admin tokens, and otherwise t must be admin of every app n is
// granted on.
func (t *Token) MayManage(n *Token) error {
	if t.Admin {
		return nil
	}
	if n.Admin {
		return Errorf(EFORBIDDEN, "only an admin token may manage an admin token")
	}
	for _, g := range n.Grants {
		if !t.Can(g.AppID, RoleAdmin) {
			return Errorf(EFORBIDDEN, "granting a role on app %s needs the admin role on it", g.App)
		}
	}
	return nil
}

// MayCreate reports whether t may create token n: it must be able to manage
// n, so no token hands out more than it holds, and n may not outlive t, so
// an expiring credential cannot mint a permanent one.
func (t *Token) MayCreate(n *Token) error {
	if err := t.MayManage(n); err != nil {
		return err
	}
	if t.ExpiresAt != nil && (n.ExpiresAt == nil || n.ExpiresAt.After(*t.ExpiresAt)) {
		return Errorf(EFORBIDDEN, "token %q expires at %s; a token it creates must expire no later",
			t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// NewTokenSecret returns a fresh token secret with 160 bits of entropy.
func NewTokenSecret() string { return "mds_" + randomToken(20) }

// HashToken returns the stored form of a token secret. Secrets are random and
// long, so a plain SHA-256 resists guessing; a slow hash would only slow
// every API call.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
