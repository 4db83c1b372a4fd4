package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/mds-dev/mds"
)

const appColumns = `id, slug, name, app_key, previous_key, platforms, created_at, revision`

// CreateApp implements mds.AppStore.
func (s *Store) CreateApp(ctx context.Context, a *mds.App) error {
	a.CreatedAt = s.now()
	return s.transact(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO apps (slug, name, app_key, previous_key, platforms, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
			a.Slug, a.Name, a.Key, nullString(a.PreviousKey), mds.JoinPlatforms(a.Platforms), millis(a.CreatedAt)).Scan(&a.ID)
		if err != nil {
			return s.conflict(err, "an app with slug %q or its key already exists", a.Slug)
		}
		a.Revision, err = s.bumpApp(ctx, tx, a.ID)
		return err
	})
}

// FindApp implements mds.AppStore.
func (s *Store) FindApp(ctx context.Context, slug string) (*mds.App, error) {
	a, err := scanApp(s.read.QueryRowContext(ctx, s.q(`SELECT `+appColumns+` FROM apps WHERE slug = ?`), slug))
	return a, notFound(err, "app %q not found", slug)
}

// ListApps implements mds.AppStore.
func (s *Store) ListApps(ctx context.Context, p mds.Page) ([]*mds.App, error) {
	page, args, err := namePage(p, "slug")
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+appColumns+` FROM apps WHERE 1 = 1`+page), args...)
	return collect(rows, err, scanApp)
}

// UpdateApp implements mds.AppStore.
func (s *Store) UpdateApp(ctx context.Context, id int64, change func(*mds.App) error) (*mds.App, error) {
	var a *mds.App
	err := s.transact(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanApp(tx.QueryRowContext(ctx, s.q(`SELECT `+appColumns+` FROM apps WHERE id = ?`+s.d.ForUpdate), id))
		if err != nil {
			return notFound(err, "app %d not found", id)
		}
		before := slices.Clone(a.Platforms)
		if err := change(a); err != nil {
			return err
		}
		for _, p := range before {
			if a.HasPlatform(p) {
				continue
			}
			var task int64
			err := tx.QueryRowContext(ctx, s.q(`SELECT t.id FROM tasks t JOIN artifacts r ON r.id = t.artifact_id
				WHERE t.app_id = ? AND t.status NOT IN (`+marks(len(finished))+`) AND r.platform = ? LIMIT 1`),
				slices.Concat([]any{a.ID}, finished, []any{p})...).Scan(&task)
			switch {
			case err == nil:
				return mds.Errorf(mds.ECONFLICT, "task %d delivers to %s; stop it before dropping the platform", task, p)
			case err != sql.ErrNoRows:
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE apps SET slug = ?, name = ?, app_key = ?, previous_key = ?, platforms = ? WHERE id = ?`),
			a.Slug, a.Name, a.Key, nullString(a.PreviousKey), mds.JoinPlatforms(a.Platforms), a.ID)
		if err != nil {
			return s.conflict(err, "an app with slug %q already exists", a.Slug)
		}
		a.Revision, err = s.bumpApp(ctx, tx, a.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// DeleteApp implements mds.AppStore. Rows go children first; the database
// cascades what hangs off tasks and artifacts.
func (s *Store) DeleteApp(ctx context.Context, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		var task int64
		var status mds.Status
		err := tx.QueryRowContext(ctx, s.q(`SELECT id, status FROM tasks WHERE app_id = ? AND status NOT IN (`+marks(len(finished))+`) LIMIT 1`),
			append([]any{id}, finished...)...).Scan(&task, &status)
		switch {
		case err == nil:
			return mds.Errorf(mds.ECONFLICT, "task %d is %s; stop every task of the app before deleting it", task, status)
		case err != sql.ErrNoRows:
			return err
		}
		for _, q := range []string{
			`DELETE FROM config_versions WHERE app_id = ?`,
			`DELETE FROM tasks WHERE app_id = ?`,
			`DELETE FROM hotpatch_versions WHERE app_id = ?`,
			`DELETE FROM offline_versions WHERE app_id = ?`,
			`DELETE FROM deltas WHERE app_id = ?`,
			`DELETE FROM artifacts WHERE app_id = ?`,
			`DELETE FROM blobs WHERE app_id = ?`,
			`DELETE FROM whitelist_entries WHERE whitelist_id IN (SELECT id FROM whitelists WHERE app_id = ?)`,
			`DELETE FROM whitelists WHERE app_id = ?`,
			`DELETE FROM rule_sets WHERE app_id = ?`,
			`DELETE FROM token_grants WHERE app_id = ?`,
			`DELETE FROM team_keys WHERE app_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM apps WHERE id = ?`), id)
		if err := rowsAffected(res, err, "app %d not found", id); err != nil {
			return err
		}
		return s.bump(ctx, tx, id)
	})
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func scanApp(r scanner) (*mds.App, error) {
	var a mds.App
	var platforms string
	var previous sql.NullString
	var created int64
	if err := r.Scan(&a.ID, &a.Slug, &a.Name, &a.Key, &previous, &platforms, &created, &a.Revision); err != nil {
		return nil, err
	}
	a.PreviousKey = previous.String
	for p := range strings.SplitSeq(platforms, ",") {
		a.Platforms = append(a.Platforms, mds.Platform(p))
	}
	a.CreatedAt = fromMillis(created)
	return &a, nil
}

// nullString stores "" as NULL, for optional unique columns: NULLs never
// clash with each other.
func nullString(v string) sql.NullString { return sql.NullString{String: v, Valid: v != ""} }
