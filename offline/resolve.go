package offline

import (
	"net/url"
	"strings"

	"github.com/mds-dev/mds/bundle"
)

// Resolve says how the package serves u, as a WebView's interceptor asks
// of every request: a URL on another host is not the package's (mine is
// false); a URL on its host is served from the package's file (file, a
// path in the package) when the package holds it, and otherwise fetched
// from fallback, the package's fallback base with the path and query
// appended. A path that ends in / is its index.html; the host's root is
// the entry page.
func (m *Manifest) Resolve(u *url.URL) (file, fallback string, mine bool) {
	if !sameOrigin(u, m.Host) {
		return "", "", false
	}
	p := u.EscapedPath()
	if p == "" || p == "/" {
		p = m.Entry
	} else if strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	if name, ok := filePath(p); ok {
		if _, ok := m.file(name); ok {
			return name, "", true
		}
	}
	return "", m.FallbackURL(u), true
}

// filePath is the path in a package that escaped URL path p names, if it
// names one: each segment unescaped on its own, so that an escaped slash
// (%2F) stays part of its segment, and so names no file.
func filePath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		seg, err := url.PathUnescape(s)
		if err != nil || strings.Contains(seg, "/") {
			return "", false
		}
		segs[i] = seg
	}
	name := strings.Join(segs, "/")
	return name, bundle.ValidPath(name) == nil
}

// FallbackURL is where u, a URL of the package's host, is fetched from
// while the package does not serve it: the fallback base, then the path
// (as escaped in u, without its leading /) and the query.
func (m *Manifest) FallbackURL(u *url.URL) string {
	base := m.Fallback
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	out := base + strings.TrimPrefix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}

// sameOrigin reports whether u is on host, an origin as a manifest has it
// (lowercase, without a default port).
func sameOrigin(u *url.URL, host string) bool {
	scheme := strings.ToLower(u.Scheme)
	h := strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	}
	return scheme+"://"+h == host
}
