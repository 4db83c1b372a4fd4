package httpapi

import (
	"context"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/mds-dev/mds"
)

// op describes a management operation for huma and the OpenAPI document.
func op(id, method, path, summary, tag string, status int) huma.Operation {
	return huma.Operation{OperationID: id, Method: method, Path: path, Summary: summary,
		Tags: []string{tag}, Security: bearerSecurity, DefaultStatus: status}
}

// register adds a management operation. Handlers return domain errors;
// they become problem documents here, in one place.
func register[I, O any](s *Server, o huma.Operation, h func(context.Context, *I) (*O, error)) {
	huma.Register(s.api, o, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.errorFor(o.OperationID, err)
		}
		return out, nil
	})
}

// Paging is the paging of a list operation. It is exported because huma
// reads parameters only from exported fields, embedded ones included.
type Paging struct {
	After string `query:"after" doc:"Cursor: the next of the previous page; empty for the first"`
	Limit int    `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"At most this many items"`
}

func (p *Paging) page() mds.Page { return mds.Page{After: p.After, Limit: p.Limit} }

// next is the cursor after a page of n items whose last has cursor last:
// none when the page was not full, so the list is complete.
func next(n, limit int, last func() string) string {
	if n == 0 || n < limit {
		return ""
	}
	return last()
}

func idCursor(id int64) string { return strconv.FormatInt(id, 10) }

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

type appPath struct {
	App string `path:"app" doc:"App slug"`
}

type objectPath struct {
	App string `path:"app" doc:"App slug"`
	ID  int64  `path:"id"`
}
