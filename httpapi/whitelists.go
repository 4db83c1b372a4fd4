package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"os"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/api"
)

// maxWhitelistBody bounds a whitelist file: a million IDs of a typical
// length fit several times over.
const maxWhitelistBody = 256 << 20

func (s *Server) registerWhitelists() {
	register(s, op("create-whitelist", http.MethodPost, "/api/v1/apps/{app}/whitelists", "Create an empty whitelist of user or device IDs", "whitelists", 201), s.createWhitelist)
	register(s, op("list-whitelists", http.MethodGet, "/api/v1/apps/{app}/whitelists", "List an app's whitelists", "whitelists", 0), s.listWhitelists)
	register(s, op("get-whitelist", http.MethodGet, "/api/v1/apps/{app}/whitelists/{id}", "Get a whitelist's size and version", "whitelists", 0), s.getWhitelist)
	register(s, op("list-whitelist-entries", http.MethodGet, "/api/v1/apps/{app}/whitelists/{id}/entries", "Page through a whitelist's entries in order", "whitelists", 0), s.listWhitelistEntries)
	register(s, op("edit-whitelist", http.MethodPatch, "/api/v1/apps/{app}/whitelists/{id}/entries", "Add and remove entries", "whitelists", 0), s.editWhitelist)
	register(s, op("delete-whitelist", http.MethodDelete, "/api/v1/apps/{app}/whitelists/{id}", "Delete a whitelist no running task uses", "whitelists", 204), s.deleteWhitelist)
}

type whitelistInput struct {
	App  string `path:"app" doc:"App slug"`
	Body api.CreateWhitelist
}

type whitelistBody struct {
	Body *mds.Whitelist
}

func (s *Server) createWhitelist(ctx context.Context, in *whitelistInput) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	w := &mds.Whitelist{AppID: a.ID, Name: in.Body.Name, Kind: in.Body.Kind}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateWhitelist(ctx, w); err != nil {
		return nil, err
	}
	return &whitelistBody{Body: w}, nil
}

type listWhitelistsInput struct {
	App string `path:"app" doc:"App slug"`
	Paging
}

type whitelistsBody struct {
	Body api.Whitelists
}

func (s *Server) listWhitelists(ctx context.Context, in *listWhitelistsInput) (*whitelistsBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	list, err := s.store.ListWhitelists(ctx, a.ID, in.page())
	if err != nil {
		return nil, err
	}
	out := &whitelistsBody{Body: api.Whitelists{Whitelists: nonNil(list)}}
	out.Body.Next = next(len(list), in.Limit, func() string { return list[len(list)-1].Name })
	return out, nil
}

func (s *Server) getWhitelist(ctx context.Context, in *objectPath) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	w, err := s.store.FindWhitelist(ctx, a.ID, in.ID)
	if err != nil {
		return nil, err
	}
	return &whitelistBody{Body: w}, nil
}

type entriesInput struct {
	App   string `path:"app" doc:"App slug"`
	ID    int64  `path:"id"`
	After string `query:"after" doc:"Start after this entry: the next of the previous page"`
	Limit int    `query:"limit" minimum:"1" maximum:"10000" default:"1000"`
}

type entriesBody struct {
	Body api.Entries
}

func (s *Server) listWhitelistEntries(ctx context.Context, in *entriesInput) (*entriesBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleViewer)
	if err != nil {
		return nil, err
	}
	entries, err := s.store.WhitelistEntries(ctx, a.ID, in.ID, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := &entriesBody{Body: api.Entries{Entries: entries}}
	out.Body.Next = next(len(entries), in.Limit, func() string { return entries[len(entries)-1] })
	return out, nil
}

type editWhitelistInput struct {
	App  string `path:"app" doc:"App slug"`
	ID   int64  `path:"id"`
	Body api.EditWhitelist
}

func (s *Server) editWhitelist(ctx context.Context, in *editWhitelistInput) (*whitelistBody, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	for i, e := range in.Body.Add {
		if _, err := mds.ParseEntry(e); err != nil {
			return nil, mds.Errorf(mds.EINVALID, "add[%d]: %s", i, mds.ErrorMessage(err))
		}
	}
	w, err := s.store.EditWhitelist(ctx, a.ID, in.ID, in.Body.Add, in.Body.Remove)
	if err != nil {
		return nil, err
	}
	s.log.Info("whitelist edited", "app", a.Slug, "whitelist", w.ID, "entries", w.Entries, "by", caller(ctx).Name)
	s.refresh(ctx)
	return &whitelistBody{Body: w}, nil
}

func (s *Server) deleteWhitelist(ctx context.Context, in *objectPath) (*struct{}, error) {
	a, err := s.appFor(ctx, in.App, mds.RoleReleaser)
	if err != nil {
		return nil, err
	}
	return nil, s.store.DeleteWhitelist(ctx, a.ID, in.ID)
}

// replaceWhitelist streams a whitelist file (newline or CSV) in place of
// the entries: a plain handler, as the file may be a million lines. A file
// without entries would silently empty a live list, so it is refused
// unless the caller says so (?allow_empty=true).
func (s *Server) replaceWhitelist(w http.ResponseWriter, r *http.Request) {
	a, t, ok := s.streamCaller(w, r, mds.RoleReleaser)
	if !ok {
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, mds.Errorf(mds.ENOTFOUND, "whitelist %q not found", r.PathValue("id")))
		return
	}
	allowEmpty := false
	switch v := r.URL.Query().Get("allow_empty"); v {
	case "", "false":
	case "true":
		allowEmpty = true
	default:
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID, "allow_empty is true or false, not %q", v))
		return
	}
	body, ok := s.streamBody(w, r, maxWhitelistBody, "the whitelist file", "a million entries")
	if !ok {
		return
	}
	// Read and check the whole file before the transaction starts, into a
	// temporary file of clean entries: a slow upload must not hold the
	// database's write lock (SQLite has one writer) while it trickles in.
	spool, n, err := s.spoolEntries(mds.ParseWhitelist(body))
	if spool != nil {
		defer os.Remove(spool.Name())
		defer spool.Close()
	}
	if err != nil {
		s.streamFailed(w, r, err, a, t, maxWhitelistBody, "the whitelist file", "a million entries")
		return
	}
	if n == 0 && !allowEmpty {
		s.writeProblem(w, r, mds.Errorf(mds.EINVALID, "the file has no entries; to empty the whitelist on purpose, "+
			"send ?allow_empty=true (mds whitelist upload --allow-empty)"))
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

// spoolEntries writes entries to a temporary file in the spool directory,
// one per line, rewinds it and counts them. The caller removes the file.
func (s *Server) spoolEntries(entries iter.Seq2[string, error]) (*os.File, int, error) {
	f, err := os.CreateTemp(s.spool, "whitelist-*")
	if err != nil {
		return nil, 0, err
	}
	bw := bufio.NewWriter(f)
	n := 0
	for e, err := range entries {
		if err != nil {
			return f, n, err
		}
		bw.WriteString(e)
		bw.WriteByte('\n')
		n++
	}
	if err := bw.Flush(); err != nil {
		return f, n, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return f, n, err
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
			"A bad line is refused with its number and the old entries stay. A file without entries is refused " +
			"unless allow_empty=true.",
		Tags: []string{"whitelists"},
		Parameters: []*huma.Param{
			{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: "integer"}},
			{Name: "allow_empty", In: "query", Description: "Let a file without entries empty the whitelist", Schema: &huma.Schema{Type: "boolean"}},
		},
	}, "text/plain", reflect.TypeFor[mds.Whitelist](), "200")
}
