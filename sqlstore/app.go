package sqlstore

import (
	"context"
	"database/sql"
	"strings"

	"github.com/mds-dev/mds"
)

const appColumns = `id, slug, name, app_key, platforms, created_at`

// CreateApp implements mds.AppStore.
func (s *Store) CreateApp(ctx context.Context, a *mds.App) error {
	a.CreatedAt = s.now()
	return s.transact(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO apps (slug, name, app_key, platforms, created_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`),
			a.Slug, a.Name, a.Key, mds.JoinPlatforms(a.Platforms), millis(a.CreatedAt)).Scan(&a.ID)
		if err != nil {
			return s.conflict(err, "an app with slug %q already exists", a.Slug)
		}
		return s.bump(ctx, tx)
	})
}

// FindApp implements mds.AppStore.
func (s *Store) FindApp(ctx context.Context, slug string) (*mds.App, error) {
	a, err := scanApp(s.read.QueryRowContext(ctx, s.q(`SELECT `+appColumns+` FROM apps WHERE slug = ?`), slug))
	return a, notFound(err, "app %q not found", slug)
}

// ListApps implements mds.AppStore.
func (s *Store) ListApps(ctx context.Context) ([]*mds.App, error) {
	return s.listApps(ctx, s.read)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) listApps(ctx context.Context, q querier) ([]*mds.App, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+appColumns+` FROM apps ORDER BY slug`)
	return collect(rows, err, scanApp)
}

func scanApp(r scanner) (*mds.App, error) {
	var a mds.App
	var platforms string
	var created int64
	if err := r.Scan(&a.ID, &a.Slug, &a.Name, &a.Key, &platforms, &created); err != nil {
		return nil, err
	}
	for p := range strings.SplitSeq(platforms, ",") {
		a.Platforms = append(a.Platforms, mds.Platform(p))
	}
	a.CreatedAt = fromMillis(created)
	return &a, nil
}
