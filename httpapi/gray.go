package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/netip"
	"os"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/gray"
	"github.com/mds-dev/mds/release"
)

// maxWhitelistBody bounds a whitelist file: a million IDs of a typical
// length fit several times over.
const maxWhitelistBody = 256 << 20

// registerGray declares the gray release operations: targeting edits,
// rule sets, whitelists, explain and audience preview.
func (s *Server) registerGray() {
	op := func(id, method, path, summary, tag string, status int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary,
			Tags: []string{tag}, Security: bearerSecurity, DefaultStatus: status}
	}
	huma.Register(s.api, op("set-targeting", http.MethodPut, "/api/v1/apps/{app}/tasks/{id}/targeting",
		"Replace a task's targeting; live tasks change at the next check", "tasks", 0), s.setTargeting)

	huma.Register(s.api, op("create-rule-set", http.MethodPost, "/api/v1/apps/{app}/rule-sets", "Save a named, reusable rule set", "rules", 201), s.createRuleSet)
	huma.Register(s.api, op("list-rule-sets", http.MethodGet, "/api/v1/apps/{app}/rule-sets", "List an app's rule sets", "rules", 0), s.listRuleSets)
	huma.Register(s.api, op("get-rule-set", http.MethodGet, "/api/v1/apps/{app}/rule-sets/{id}", "Get a rule set", "rules", 0), s.getRuleSet)
	huma.Register(s.api, op("update-rule-set", http.MethodPut, "/api/v1/apps/{app}/rule-sets/{id}",
		"Replace a rule set; every task using it follows at the next check", "rules", 0), s.updateRuleSet)
	huma.Register(s.api, op("delete-rule-set", http.MethodDelete, "/api/v1/apps/{app}/rule-sets/{id}", "Delete a rule set no running task uses", "rules", 204), s.deleteRuleSet)

	huma.Register(s.api, op("create-whitelist", http.MethodPost, "/api/v1/apps/{app}/whitelists", "Create an empty whitelist of user or device IDs", "whitelists", 201), s.createWhitelist)
	huma.Register(s.api, op("list-whitelists", http.MethodGet, "/api/v1/apps/{app}/whitelists", "List an app's whitelists", "whitelists", 0), s.listWhitelists)
	huma.Register(s.api, op("get-whitelist", http.MethodGet, "/api/v1/apps/{app}/whitelists/{id}", "Get a whitelist's size and version", "whitelists", 0), s.getWhitelist)
	huma.Register(s.api, op("list-whitelist-entries", http.MethodGet, "/api/v1/apps/{app}/whitelists/{id}/entries", "Page through a whitelist's entries in order", "whitelists", 0), s.listWhitelistEntries)
	huma.Register(s.api, op("edit-whitelist", http.MethodPatch, "/api/v1/apps/{app}/whitelists/{id}/entries", "Add and remove entries", "whitelists", 0), s.editWhitelist)
	huma.Register(s.api, op("delete-whitelist", http.MethodDelete, "/api/v1/apps/{app}/whitelists/{id}", "Delete a whitelist no running task uses", "whitelists", 204), s.deleteWhitelist)

	huma.Register(s.api, op("explain", http.MethodPost, "/api/v1/apps/{app}/explain",
		"For a device context, say what every live task decides and why", "gray", 0), s.explain)
	huma.Register(s.api, op("preview", http.MethodPost, "/api/v1/apps/{app}/preview",
		"The share of recently seen devices that rules would match", "gray", 0), s.preview)
}

// ---- targeting

type targetingInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body mds.Targeting
}

func (s *Server) setTargeting(ctx context.Context, in *targetingInput) (*taskBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("set-targeting", err)
	}
	actor := caller(ctx).Name
	t, err := s.store.UpdateTask(ctx, a.ID, in.ID, actor, func(t *mds.Task) (string, error) {
		if t.Status == mds.StatusStopped {
			return "", mds.Errorf(mds.ECONFLICT, "task %d is stopped; create a new task", t.ID)
		}
		if _, err := compileRules(in.Body.Rules); err != nil {
			return "", err
		}
		return "targeting", t.SetTargeting(in.Body)
	})
	if err != nil {
		return nil, s.humaError("set-targeting", err)
	}
	s.log.Info("task targeting changed", "app", a.Slug, "task", t.ID, "stage", t.Stage, "by", actor)
	s.refresh(ctx)
	return s.taskBody(ctx, a, t)
}

// ---- rule sets

type ruleSetInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		Name  string     `json:"name" doc:"Unique in the app, e.g. east-china-wifi"`
		Rules []mds.Rule `json:"rules" minItems:"1"`
	}
}

type ruleSetBody struct {
	Body *mds.RuleSet
}

func (s *Server) createRuleSet(ctx context.Context, in *ruleSetInput) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("create-rule-set", err)
	}
	rs := &mds.RuleSet{AppID: a.ID, Name: in.Body.Name, Rules: in.Body.Rules}
	if err := validRuleSet(rs); err != nil {
		return nil, s.humaError("create-rule-set", err)
	}
	if err := s.store.CreateRuleSet(ctx, rs); err != nil {
		return nil, s.humaError("create-rule-set", err)
	}
	return &ruleSetBody{Body: rs}, nil
}

// validRuleSet checks the shape and, by compiling them, the values of the
// rules, so that a rule set that is saved always compiles.
func validRuleSet(rs *mds.RuleSet) error {
	if err := rs.Validate(); err != nil {
		return err
	}
	_, err := compileRules(rs.Rules)
	return err
}

func compileRules(rules []mds.Rule) ([]*gray.Rule, error) {
	out := make([]*gray.Rule, 0, len(rules))
	for i, r := range rules {
		c, err := gray.CompileRule(r)
		if err != nil {
			return nil, mds.Errorf(mds.EINVALID, "rule %d: %s", i+1, mds.ErrorMessage(err))
		}
		out = append(out, c)
	}
	return out, nil
}

type ruleSetsBody struct {
	Body struct {
		RuleSets []*mds.RuleSet `json:"rule_sets"`
	}
}

func (s *Server) listRuleSets(ctx context.Context, in *appPath) (*ruleSetsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("list-rule-sets", err)
	}
	list, err := s.store.ListRuleSets(ctx, a.ID)
	if err != nil {
		return nil, s.humaError("list-rule-sets", err)
	}
	out := &ruleSetsBody{}
	out.Body.RuleSets = nonNil(list)
	return out, nil
}

func (s *Server) getRuleSet(ctx context.Context, in *objectPath) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("get-rule-set", err)
	}
	rs, err := s.store.FindRuleSet(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("get-rule-set", err)
	}
	return &ruleSetBody{Body: rs}, nil
}

type updateRuleSetInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body struct {
		Name  string     `json:"name"`
		Rules []mds.Rule `json:"rules" minItems:"1"`
	}
}

func (s *Server) updateRuleSet(ctx context.Context, in *updateRuleSetInput) (*ruleSetBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("update-rule-set", err)
	}
	rs, err := s.store.FindRuleSet(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("update-rule-set", err)
	}
	rs.Name, rs.Rules = in.Body.Name, in.Body.Rules
	if err := validRuleSet(rs); err != nil {
		return nil, s.humaError("update-rule-set", err)
	}
	if err := s.store.UpdateRuleSet(ctx, rs); err != nil {
		return nil, s.humaError("update-rule-set", err)
	}
	s.log.Info("rule set changed", "app", a.Slug, "rule_set", rs.ID, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &ruleSetBody{Body: rs}, nil
}

func (s *Server) deleteRuleSet(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err == nil {
		err = s.store.DeleteRuleSet(ctx, a.ID, in.ID)
	}
	if err != nil {
		return nil, s.humaError("delete-rule-set", err)
	}
	return nil, nil
}

// ---- whitelists

type whitelistInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		Name string            `json:"name" doc:"Unique in the app, e.g. beta testers"`
		Kind mds.WhitelistKind `json:"kind" enum:"user,device" doc:"Which ID the entries are: user_id or device_id"`
	}
}

type whitelistBody struct {
	Body *mds.Whitelist
}

func (s *Server) createWhitelist(ctx context.Context, in *whitelistInput) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("create-whitelist", err)
	}
	w := &mds.Whitelist{AppID: a.ID, Name: in.Body.Name, Kind: in.Body.Kind}
	if err := w.Validate(); err != nil {
		return nil, s.humaError("create-whitelist", err)
	}
	if err := s.store.CreateWhitelist(ctx, w); err != nil {
		return nil, s.humaError("create-whitelist", err)
	}
	return &whitelistBody{Body: w}, nil
}

type whitelistsBody struct {
	Body struct {
		Whitelists []*mds.Whitelist `json:"whitelists"`
	}
}

func (s *Server) listWhitelists(ctx context.Context, in *appPath) (*whitelistsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("list-whitelists", err)
	}
	list, err := s.store.ListWhitelists(ctx, a.ID)
	if err != nil {
		return nil, s.humaError("list-whitelists", err)
	}
	out := &whitelistsBody{}
	out.Body.Whitelists = nonNil(list)
	return out, nil
}

func (s *Server) getWhitelist(ctx context.Context, in *objectPath) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("get-whitelist", err)
	}
	w, err := s.store.FindWhitelist(ctx, a.ID, in.ID)
	if err != nil {
		return nil, s.humaError("get-whitelist", err)
	}
	return &whitelistBody{Body: w}, nil
}

type entriesInput struct {
	App   string `path:"app" doc:"App slug"`
	ID    int64  `path:"id"`
	After string `query:"after" doc:"Start after this entry (the last of the previous page)"`
	Limit int    `query:"limit" minimum:"1" maximum:"10000" default:"1000"`
}

type entriesBody struct {
	Body struct {
		Entries []string `json:"entries"`
	}
}

func (s *Server) listWhitelistEntries(ctx context.Context, in *entriesInput) (*entriesBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("list-whitelist-entries", err)
	}
	entries, err := s.store.WhitelistEntries(ctx, a.ID, in.ID, in.After, in.Limit)
	if err != nil {
		return nil, s.humaError("list-whitelist-entries", err)
	}
	out := &entriesBody{}
	out.Body.Entries = entries
	return out, nil
}

type editWhitelistInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body struct {
		Add    []string `json:"add,omitempty" maxItems:"10000" doc:"Entries to add: IDs, or re:<expression>"`
		Remove []string `json:"remove,omitempty" maxItems:"10000"`
	}
}

func (s *Server) editWhitelist(ctx context.Context, in *editWhitelistInput) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, s.humaError("edit-whitelist", err)
	}
	for i, e := range in.Body.Add {
		if _, err := mds.ParseEntry(e); err != nil {
			return nil, s.humaError("edit-whitelist", mds.Errorf(mds.EINVALID, "add[%d]: %s", i, mds.ErrorMessage(err)))
		}
	}
	w, err := s.store.EditWhitelist(ctx, a.ID, in.ID, in.Body.Add, in.Body.Remove)
	if err != nil {
		return nil, s.humaError("edit-whitelist", err)
	}
	s.log.Info("whitelist edited", "app", a.Slug, "whitelist", w.ID, "entries", w.Entries, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &whitelistBody{Body: w}, nil
}

func (s *Server) deleteWhitelist(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err == nil {
		err = s.store.DeleteWhitelist(ctx, a.ID, in.ID)
	}
	if err != nil {
		return nil, s.humaError("delete-whitelist", err)
	}
	return nil, nil
}

// replaceWhitelist streams a whitelist file (newline or CSV) in place of
// the entries: a plain handler, as the file may be a million lines.
func (s *Server) replaceWhitelist(w http.ResponseWriter, r *http.Request) {
	a, t, ok := s.streamCaller(w, r, mds.RoleReleaser)
	if !ok {
		return
	}
	var id int64
	if _, err := fmt.Sscan(r.PathValue("id"), &id); err != nil {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "whitelist %q not found", r.PathValue("id")))
		return
	}
	body, ok := s.streamBody(w, r, maxWhitelistBody, "the whitelist file", "a million entries")
	if !ok {
		return
	}
	// Read and check the whole file before the transaction starts, into a
	// temporary file of clean entries: a slow upload must not hold the
	// database's write lock (SQLite has one writer) while it trickles in.
	spool, err := spoolEntries(mds.ParseWhitelist(body))
	if spool != nil {
		defer os.Remove(spool.Name())
		defer spool.Close()
	}
	if err != nil {
		s.streamFailed(w, r, err, a, t, maxWhitelistBody, "the whitelist file", "a million entries")
		return
	}
	list, err := s.store.ReplaceWhitelist(r.Context(), a.ID, id, lines(spool))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.log.Info("whitelist replaced", "app", a.Slug, "whitelist", id, "entries", list.Entries, "by", t.Name)
	s.refresh(r.Context())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// spoolEntries writes entries to a temporary file, one per line, and
// rewinds it. The caller removes the file.
func spoolEntries(entries iter.Seq2[string, error]) (*os.File, error) {
	f, err := os.CreateTemp("", "mds-whitelist-*")
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(f)
	for e, err := range entries {
		if err != nil {
			return f, err
		}
		bw.WriteString(e)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return f, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return f, err
}

// lines yields the lines of r.
func lines(r io.Reader) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if !yield(sc.Text(), nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield("", err)
		}
	}
}

func (s *Server) documentWhitelistUpload() {
	s.documentStream(&huma.Operation{
		OperationID: "replace-whitelist",
		Method:      http.MethodPut,
		Path:        "/api/v1/apps/{app}/whitelists/{id}/entries",
		Summary:     "Replace a whitelist's entries with a file (streamed)",
		Description: "One entry per line, or CSV whose first column is the entry; blank lines, # comments and a header line " +
			"are skipped; duplicates count once; re:<expression> is a regular expression. Up to 1,000,000 entries. " +
			"A bad line is refused with its number and the old entries stay.",
		Tags:       []string{"whitelists"},
		Parameters: []*huma.Param{{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "integer"}}},
	}, "text/plain", reflect.TypeFor[mds.Whitelist](), "200")
}

// ---- explain and preview

type explainInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		Device mds.Device `json:"device" doc:"What the device would send in a check; app_key and platform may be left out"`
		IP     string     `json:"ip,omitempty" doc:"The address the check would come from, for CIDR rules"`
	}
}

type explainBody struct {
	Body struct {
		Revision int64                 `json:"revision" doc:"The snapshot revision this explanation is from"`
		Tasks    []release.Explanation `json:"tasks" doc:"Every live task of the app, in priority order"`
	}
}

func (s *Server) explain(ctx context.Context, in *explainInput) (*explainBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("explain", err)
	}
	d := in.Body.Device
	d.AppKey = a.Key
	if d.Platform == "" && len(a.Platforms) == 1 {
		d.Platform = a.Platforms[0]
	}
	if err := d.Validate(); err != nil {
		return nil, s.humaError("explain", err)
	}
	var ip netip.Addr
	if in.Body.IP != "" {
		if ip, err = netip.ParseAddr(in.Body.IP); err != nil {
			return nil, s.humaError("explain", mds.Errorf(mds.EINVALID, "ip %q is not an IP address", in.Body.IP))
		}
	}
	snap := s.live.Current()
	if snap == nil {
		return nil, s.humaError("explain", mds.Errorf(mds.EUNAVAILABLE, "no release snapshot loaded yet"))
	}
	gin := gray.NewInput(&d, ip, s.now())
	tasks, err := snap.Explain(&gin, s.admit)
	if err != nil {
		return nil, s.humaError("explain", err)
	}
	out := &explainBody{}
	out.Body.Revision, out.Body.Tasks = snap.Revision, tasks
	return out, nil
}

type previewInput struct {
	App  string `path:"app" doc:"App slug"`
	Body struct {
		Rules    []mds.Rule `json:"rules,omitempty"`
		RuleSets []int64    `json:"rule_sets,omitempty" doc:"Saved rule sets, ANDed with the rules"`
	}
}

type previewBody struct {
	Body struct {
		Sampled int     `json:"sampled" doc:"Recently seen devices in the sample"`
		Matched int     `json:"matched"`
		Share   float64 `json:"share" doc:"matched / sampled; 0 when nothing was sampled"`
	}
}

// preview counts how many recently seen devices the rules match, before a
// release goes out. The sample is bounded per app and lives in memory.
func (s *Server) preview(ctx context.Context, in *previewInput) (*previewBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, s.humaError("preview", err)
	}
	// The same bounds as a task's targeting: a preview is work for every
	// sampled device, and a viewer may ask for one.
	bounds := mds.Targeting{Rules: in.Body.Rules, RuleSets: in.Body.RuleSets}
	if err := bounds.Validate(); err != nil {
		return nil, s.humaError("preview", err)
	}
	rules := in.Body.Rules
	for _, id := range in.Body.RuleSets {
		rs, err := s.store.FindRuleSet(ctx, a.ID, id)
		if err != nil {
			return nil, s.humaError("preview", err)
		}
		rules = append(rules, rs.Rules...)
	}
	compiled, err := compileRules(rules)
	if err != nil {
		return nil, s.humaError("preview", err)
	}
	out := &previewBody{}
	for _, seen := range s.recent.Sample(a.Key) {
		if err := ctx.Err(); err != nil {
			return nil, s.humaError("preview", err)
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
