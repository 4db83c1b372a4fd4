package sqlstore

import (
	"context"
	"database/sql"

	"github.com/mds-dev/mds"
)

const tokenColumns = `id, name, hash, admin, expires_at, created_at, created_by`

// CreateToken implements mds.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t *mds.Token) error {
	t.CreatedAt = s.now()
	var expires sql.NullInt64
	if t.ExpiresAt != nil {
		expires = sql.NullInt64{Int64: millis(*t.ExpiresAt), Valid: true}
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO tokens (name, hash, admin, expires_at, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`),
			t.Name, t.Hash, t.Admin, expires, millis(t.CreatedAt), t.CreatedBy).Scan(&t.ID)
		if err != nil {
			return s.conflict(err, "a token named %q already exists", t.Name)
		}
		for _, g := range t.Grants {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO token_grants (token_id, app_id, role) VALUES (?, ?, ?)`),
				t.ID, g.AppID, g.Role)
			if err != nil {
				return s.conflict(err, "app %s is granted twice", g.App)
			}
		}
		return nil
	})
}

// FindToken implements mds.TokenStore.
func (s *Store) FindToken(ctx context.Context, id int64) (*mds.Token, error) {
	return s.findToken(ctx, `id = ?`, id)
}

// FindTokenByHash implements mds.TokenStore.
func (s *Store) FindTokenByHash(ctx context.Context, hash string) (*mds.Token, error) {
	return s.findToken(ctx, `hash = ?`, hash)
}

// FindTokenByName implements mds.TokenStore.
func (s *Store) FindTokenByName(ctx context.Context, name string) (*mds.Token, error) {
	return s.findToken(ctx, `name = ?`, name)
}

func (s *Store) findToken(ctx context.Context, where string, arg any) (*mds.Token, error) {
	t, err := scanToken(s.read.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens WHERE `+where), arg))
	if err != nil {
		return nil, notFound(err, "token not found")
	}
	grants, err := s.grants(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	t.Grants = withGrants(grants[t.ID])
	return t, nil
}

// grants returns the grants of token id, or of every token when id is 0.
func (s *Store) grants(ctx context.Context, id int64) (map[int64][]mds.Grant, error) {
	query := `SELECT g.token_id, g.app_id, a.slug, g.role FROM token_grants g JOIN apps a ON a.id = g.app_id`
	var args []any
	if id != 0 {
		query += ` WHERE g.token_id = ?`
		args = append(args, id)
	}
	rows, err := s.read.QueryContext(ctx, s.q(query+` ORDER BY a.slug`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]mds.Grant{}
	for rows.Next() {
		var tokenID int64
		var g mds.Grant
		if err := rows.Scan(&tokenID, &g.AppID, &g.App, &g.Role); err != nil {
			return nil, err
		}
		out[tokenID] = append(out[tokenID], g)
	}
	return out, rows.Err()
}

// withGrants makes "no grants" an empty list, never nil.
func withGrants(g []mds.Grant) []mds.Grant {
	if g == nil {
		return []mds.Grant{}
	}
	return g
}

// ListTokens implements mds.TokenStore.
func (s *Store) ListTokens(ctx context.Context, p mds.Page) ([]*mds.Token, error) {
	page, args, err := namePage(p, "name")
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens WHERE 1 = 1`+page), args...)
	tokens, err := collect(rows, err, scanToken)
	if err != nil {
		return nil, err
	}
	grants, err := s.grants(ctx, 0)
	if err != nil {
		return nil, err
	}
	for _, t := range tokens {
		t.Grants = withGrants(grants[t.ID])
	}
	return tokens, nil
}

// RekeyToken implements mds.TokenStore.
func (s *Store) RekeyToken(ctx context.Context, id int64, hash string) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET hash = ?, expires_at = NULL WHERE id = ?`), hash, id)
		return rowsAffected(res, err, "token %d not found", id)
	})
}

// DeleteToken implements mds.TokenStore.
func (s *Store) DeleteToken(ctx context.Context, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM token_grants WHERE token_id = ?`), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM tokens WHERE id = ?`), id)
		return rowsAffected(res, err, "token %d not found", id)
	})
}

// rowsAffected turns an update that matched nothing into ENOTFOUND.
func rowsAffected(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return mds.Errorf(mds.ENOTFOUND, format, args...)
	}
	return nil
}

func scanToken(r scanner) (*mds.Token, error) {
	var t mds.Token
	var expires sql.NullInt64
	var created int64
	if err := r.Scan(&t.ID, &t.Name, &t.Hash, &t.Admin, &expires, &created, &t.CreatedBy); err != nil {
		return nil, err
	}
	if expires.Valid {
		e := fromMillis(expires.Int64)
		t.ExpiresAt = &e
	}
	t.CreatedAt = fromMillis(created)
	return &t, nil
}
