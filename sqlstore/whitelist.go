package sqlstore

import (
	"context"
	"database/sql"
	"iter"
	"strconv"
	"strings"

	"github.com/mds-dev/mds"
)

const whitelistColumns = `id, app_id, name, kind, entries, patterns, version, created_at, updated_at`

// CreateWhitelist implements mds.WhitelistStore.
func (s *Store) CreateWhitelist(ctx context.Context, w *mds.Whitelist) error {
	w.CreatedAt = s.now()
	w.UpdatedAt, w.Entries, w.Patterns, w.Version = w.CreatedAt, 0, 0, 1
	return s.transact(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO whitelists (app_id, name, kind, entries, patterns, version, created_at, updated_at)
			VALUES (?, ?, ?, 0, 0, 1, ?, ?) RETURNING id`), w.AppID, w.Name, w.Kind, millis(w.CreatedAt), millis(w.UpdatedAt)).Scan(&w.ID)
		return s.conflict(err, "a whitelist named %q already exists in this app", w.Name)
	})
}

// FindWhitelist implements mds.WhitelistStore.
func (s *Store) FindWhitelist(ctx context.Context, appID, id int64) (*mds.Whitelist, error) {
	return s.findWhitelist(ctx, s.read, appID, id, "")
}

type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// findWhitelist reads a whitelist; writers pass the dialect's FOR UPDATE so
// that concurrent edits of one whitelist take turns.
func (s *Store) findWhitelist(ctx context.Context, q rowQuerier, appID, id int64, lock string) (*mds.Whitelist, error) {
	w, err := scanWhitelist(q.QueryRowContext(ctx, s.q(`SELECT `+whitelistColumns+` FROM whitelists WHERE app_id = ? AND id = ?`+lock), appID, id))
	return w, notFound(err, "whitelist %d not found in this app", id)
}

// ListWhitelists implements mds.WhitelistStore.
func (s *Store) ListWhitelists(ctx context.Context, appID int64, p mds.Page) ([]*mds.Whitelist, error) {
	page, args, err := namePage(p, "name")
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+whitelistColumns+` FROM whitelists WHERE app_id = ?`+page), append([]any{appID}, args...)...)
	return collect(rows, err, scanWhitelist)
}

// entryBatch is how many entries one INSERT carries: few round trips, and
// far below either database's limit on parameters.
const entryBatch = 500

// ReplaceWhitelist implements mds.WhitelistStore.
func (s *Store) ReplaceWhitelist(ctx context.Context, appID, id int64, entries iter.Seq2[string, error]) (*mds.Whitelist, error) {
	var w *mds.Whitelist
	err := s.transact(ctx, func(tx *sql.Tx) error {
		var err error
		if w, err = s.findWhitelist(ctx, tx, appID, id, s.d.ForUpdate); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM whitelist_entries WHERE whitelist_id = ?`), id); err != nil {
			return err
		}
		batch := make([]string, 0, entryBatch)
		for e, err := range entries {
			if err != nil {
				return err
			}
			if batch = append(batch, e); len(batch) == entryBatch {
				if err := s.insertEntries(ctx, tx, id, batch); err != nil {
					return err
				}
				batch = batch[:0]
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		if err := s.insertEntries(ctx, tx, id, batch); err != nil {
			return err
		}
		return s.recount(ctx, tx, w)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

func (s *Store) insertEntries(ctx context.Context, tx *sql.Tx, id int64, entries []string) error {
	if len(entries) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO whitelist_entries (whitelist_id, entry) VALUES `)
	args := make([]any, 0, 2*len(entries))
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?)")
		args = append(args, id, e)
	}
	b.WriteString(` ON CONFLICT (whitelist_id, entry) DO NOTHING`)
	_, err := tx.ExecContext(ctx, s.q(b.String()), args...)
	return err
}

// patternPrefixLen is the length of mds.PatternPrefix, for SQL.
var patternPrefixLen = strconv.Itoa(len(mds.PatternPrefix))

// recount refreshes w's counts, enforces the limits, and bumps its version
// and the store's revision.
func (s *Store) recount(ctx context.Context, tx *sql.Tx, w *mds.Whitelist) error {
	// SUBSTR, not LIKE: LIKE ignores case in SQLite and not in
	// PostgreSQL, and only a lowercase "re:" makes a pattern.
	err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COUNT(CASE WHEN SUBSTR(entry, 1, `+patternPrefixLen+`) = '`+mds.PatternPrefix+`' THEN 1 END)
		FROM whitelist_entries WHERE whitelist_id = ?`), w.ID).Scan(&w.Entries, &w.Patterns)
	if err != nil {
		return err
	}
	if w.Entries > mds.MaxWhitelistEntries {
		return mds.Errorf(mds.ETOOLARGE, "%d distinct entries; a whitelist holds at most %d", w.Entries, mds.MaxWhitelistEntries)
	}
	if w.Patterns > mds.MaxWhitelistPatterns {
		return mds.Errorf(mds.EINVALID, "%d regular expressions; a whitelist holds at most %d, as each is tried on every check", w.Patterns, mds.MaxWhitelistPatterns)
	}
	w.UpdatedAt = s.now()
	err = tx.QueryRowContext(ctx, s.q(`UPDATE whitelists SET entries = ?, patterns = ?, version = version + 1, updated_at = ?
		WHERE id = ? RETURNING version`), w.Entries, w.Patterns, millis(w.UpdatedAt), w.ID).Scan(&w.Version)
	if err != nil {
		return err
	}
	return s.bump(ctx, tx, w.AppID)
}

// EditWhitelist implements mds.WhitelistStore.
func (s *Store) EditWhitelist(ctx context.Context, appID, id int64, add, remove []string) (*mds.Whitelist, error) {
	var w *mds.Whitelist
	err := s.transact(ctx, func(tx *sql.Tx) error {
		var err error
		if w, err = s.findWhitelist(ctx, tx, appID, id, s.d.ForUpdate); err != nil {
			return err
		}
		for start := 0; start < len(add); start += entryBatch {
			if err := s.insertEntries(ctx, tx, id, add[start:min(start+entryBatch, len(add))]); err != nil {
				return err
			}
		}
		for _, e := range remove {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM whitelist_entries WHERE whitelist_id = ? AND entry = ?`), id, e); err != nil {
				return err
			}
		}
		return s.recount(ctx, tx, w)
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// WhitelistEntries implements mds.WhitelistStore.
func (s *Store) WhitelistEntries(ctx context.Context, appID, id int64, after string, limit int) ([]string, error) {
	if _, err := s.FindWhitelist(ctx, appID, id); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT entry FROM whitelist_entries WHERE whitelist_id = ? AND entry > ?
		ORDER BY entry LIMIT ?`), id, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeleteWhitelist implements mds.WhitelistStore.
func (s *Store) DeleteWhitelist(ctx context.Context, appID, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		if _, err := s.findWhitelist(ctx, tx, appID, id, s.d.ForUpdate); err != nil {
			return err
		}
		if err := s.refusedIfUsed(ctx, tx, "task_whitelists", "whitelist_id", "whitelist", id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM whitelist_entries WHERE whitelist_id = ?`), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM whitelists WHERE id = ?`), id)
		return s.refused(err, mds.ECONFLICT, "whitelist %d was taken into use by a task just now; change its targeting or stop it first", id)
	})
}

// LoadWhitelist implements mds.LiveStore.
func (s *Store) LoadWhitelist(ctx context.Context, id int64, fn func(string) error) (int64, error) {
	tx, err := s.read.BeginTx(ctx, s.d.ReadTx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var version int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT version FROM whitelists WHERE id = ?`), id).Scan(&version); err != nil {
		return 0, notFound(err, "whitelist %d not found", id)
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT entry FROM whitelist_entries WHERE whitelist_id = ?`), id)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return 0, err
		}
		if err := fn(e); err != nil {
			return 0, err
		}
	}
	return version, rows.Err()
}

func scanWhitelist(r scanner) (*mds.Whitelist, error) {
	var w mds.Whitelist
	var created, updated int64
	if err := r.Scan(&w.ID, &w.AppID, &w.Name, &w.Kind, &w.Entries, &w.Patterns, &w.Version, &created, &updated); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &w, nil
}
