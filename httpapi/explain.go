package httpapi

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
	"github.com/mds-dev/mds/gray"
)

func (s *Server) registerExplain() {
	register(s, op("explain", http.MethodPost, "/api/v1/apps/{app}/explain",
		"For a device context, say what every live task decides and why", "gray", 0), s.explain)
	register(s, op("preview", http.MethodPost, "/api/v1/apps/{app}/preview",
		"The share of recently seen devices that rules would match", "gray", 0), s.preview)
}

type explainInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.Explain
}

type explainBody struct {
	Body api.ExplainResult
}

func (s *Server) explain(ctx context.Context, in *explainInput) (*explainBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	d := in.Body.Device
	d.AppKey = a.Key
	if d.Platform == "" {
		if len(a.Platforms) != 1 {
			return nil, mds.Errorf(mds.EINVALID, "app %q ships on %s: say which platform the device runs (device.platform; --platform in the CLI)",
				a.Slug, mds.JoinPlatforms(a.Platforms))
		}
		d.Platform = a.Platforms[0]
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var ip netip.Addr
	if in.Body.IP != "" {
		if ip, err = netip.ParseAddr(in.Body.IP); err != nil {
			return nil, mds.Errorf(mds.EINVALID, "ip %q is not an IP address", in.Body.IP)
		}
	}
	snap := s.live.Current()
	if snap == nil {
		return nil, mds.Errorf(mds.EUNAVAILABLE, "no release snapshot loaded yet")
	}
	gin := gray.NewInput(&d, ip, s.now())
	tasks, err := snap.Explain(&gin, s.admit)
	if err != nil {
		return nil, err
	}
	return &explainBody{Body: api.ExplainResult{Revision: snap.Revision, Tasks: tasks, Config: explainConfig(snap.ExplainConfig(&gin, tasks))}}, nil
}

type previewInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.Preview
}

type previewBody struct {
	Body api.PreviewResult
}

// preview counts how many recently seen devices the rules match, before a
// release goes out. The sample is bounded per app and lives in memory.
func (s *Server) preview(ctx context.Context, in *previewInput) (*previewBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	// The same bounds as a task's targeting: a preview is work for every
	// sampled device, and a viewer may ask for one.
	bounds := mds.Targeting{Rules: in.Body.Rules, RuleSets: in.Body.RuleSets}
	if err := bounds.Validate(); err != nil {
		return nil, err
	}
	rules := bounds.Rules
	for _, id := range in.Body.RuleSets {
		rs, err := s.store.FindRuleSet(ctx, a.ID, id)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs.Rules...)
	}
	compiled := make([]*gray.Rule, 0, len(rules))
	for i, r := range rules {
		c, err := gray.CompileRule(r)
		if err != nil {
			return nil, mds.Errorf(mds.EINVALID, "rule %d: %s", i+1, mds.ErrorMessage(err))
		}
		compiled = append(compiled, c)
	}
	out := &previewBody{}
	for _, seen := range s.recent.Sample(a.ID) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in := gray.NewInput(&seen.Device, seen.IP, s.now())
		out.Body.Sampled++
		if gray.Matches(compiled, &in) {
			out.Body.Matched++
		}
	}
	if out.Body.Sampled > 0 {
		out.Body.Share = float64(out.Body.Matched) / float64(out.Body.Sampled)
	}
	return out, nil
}
