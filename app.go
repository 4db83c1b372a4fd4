package mds

import (
	"crypto/rand"
	"encoding/base32"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Platform is the operating system family an app build runs on.
type Platform string

const (
	Android Platform = "android"
	IOS     Platform = "ios"
	Harmony Platform = "harmony"
)

// Platforms lists every platform in a fixed order; indexes into it are stable.
var Platforms = []Platform{Android, IOS, Harmony}

// Index returns p's position in Platforms, or -1 when p is not a platform.
func (p Platform) Index() int {
	switch p {
	case Android:
		return 0
	case IOS:
		return 1
	case Harmony:
		return 2
	}
	return -1
}

// Validate reports whether p is a known platform.
func (p Platform) Validate() error {
	if p.Index() < 0 {
		return Errorf(EINVALID, "platform %q is not one of android, ios, harmony", string(p))
	}
	return nil
}

// App is one mobile application: the unit of tenancy. Tokens are granted roles
// per app, and devices name their app by Key.
type App struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"` // unique, URL-safe name used by the API and CLI
	Name string `json:"name"` // display name, also the default iOS install title
	Key  string `json:"key"`  // sent by devices; public (it ships inside the app)
	// PreviousKey, after a key rotation, is still accepted from devices
	// until it is retired, so that builds already installed keep working.
	PreviousKey string     `json:"previous_key,omitempty"`
	Platforms   []Platform `json:"platforms"`
	CreatedAt   time.Time  `json:"created_at"`
	// Revision is the store revision of the app's last change: it only
	// grows, and every node reads the same one, so it versions what
	// devices of the app are told (signed answers carry it).
	Revision int64 `json:"revision"`
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate checks the fields a caller provides when creating an app.
func (a *App) Validate() error {
	if !slugPattern.MatchString(a.Slug) {
		return Errorf(EINVALID, "app slug %q must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit", a.Slug)
	}
	a.Name = strings.TrimSpace(a.Name)
	if a.Name == "" {
		a.Name = a.Slug
	}
	if err := ValidText("app name", a.Name, 200, false); err != nil {
		return err
	}
	if len(a.Platforms) == 0 {
		return Errorf(EINVALID, "an app needs at least one platform (android, ios, harmony)")
	}
	for _, p := range a.Platforms {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	slices.SortFunc(a.Platforms, func(x, y Platform) int { return x.Index() - y.Index() })
	a.Platforms = slices.Compact(a.Platforms)
	return nil
}

// JoinPlatforms renders platforms as "android,ios".
func JoinPlatforms(ps []Platform) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

// HasPlatform reports whether the app ships on p.
func (a *App) HasPlatform(p Platform) bool { return slices.Contains(a.Platforms, p) }

// NewAppKey returns a fresh random app key. Keys identify, they do not
// authenticate: anyone can read one out of an installed app.
func NewAppKey() string { return "ak_" + randomToken(15) }

// randomToken returns n random bytes in lowercase base32 without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
