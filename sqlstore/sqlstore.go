// Package sqlstore implements mds.Store over database/sql with SQL that both
// SQLite and PostgreSQL accept. The sqlite and postgres packages open the
// database, run their own migrations and hand a Dialect here for the few
// places where the two differ.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mds-dev/mds"
)

// Dialect names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Dialect captures what differs between the databases.
type Dialect struct {
	// Name is SQLite or Postgres; migrations branch on it.
	Name string
	// Numbered says placeholders are $1, $2… rather than ?.
	Numbered bool
	// ForUpdate is appended to a SELECT that reads a row about to be updated.
	ForUpdate string
	// ReadTx are the options for a consistent multi-statement read.
	ReadTx *sql.TxOptions
	// IsUnique reports whether err is a unique-constraint violation.
	IsUnique func(error) bool
	// IsForeignKey reports whether err is a foreign-key violation.
	IsForeignKey func(error) bool
	// Notify, if set, is run in every transaction that moves the revision,
	// with the change (FormatChange) as its one argument, to tell other
	// nodes at commit (PostgreSQL's pg_notify).
	Notify string
}

// Store implements mds.Store.
type Store struct {
	read  *sql.DB // any number of readers
	write *sql.DB // SQLite wants one writer; PostgreSQL passes the same pool
	d     Dialect
	// Now is the clock; tests replace it.
	Now func() time.Time
	// keep is how many of the newest revisions the change log holds.
	keep atomic.Int64
	// deltaBases is how many earlier versions a released offline
	// package gets deltas from.
	deltaBases atomic.Int64
}

var _ mds.Store = (*Store)(nil)

// New returns a Store over already-migrated databases. read and write may be
// the same pool.
func New(read, write *sql.DB, d Dialect) *Store {
	s := &Store{read: read, write: write, d: d, Now: time.Now}
	s.keep.Store(changeLog)
	s.deltaBases.Store(mds.DefaultDeltaBases)
	return s
}

// SetChangeLog shortens the change log to the newest keep revisions, so
// that tests reach its end in a few writes.
func (s *Store) SetChangeLog(keep int64) { s.keep.Store(keep) }

// Close closes both pools.
func (s *Store) Close() error {
	err := s.write.Close()
	if s.read != s.write {
		err = errors.Join(err, s.read.Close())
	}
	return err
}

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return err
	}
	return s.write.PingContext(ctx)
}

// transact runs fn in a write transaction, committing if it returns nil.
func (s *Store) transact(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// q rewrites ? placeholders for dialects that number them.
func (s *Store) q(query string) string { return s.d.q(query) }

func (d Dialect) q(query string) string {
	if !d.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// bump increments the revision inside tx, records that the write changed
// app, and makes the new revision the app's; call it from every write that
// can change what devices are told. The log keeps the last changeLog
// revisions.
func (s *Store) bump(ctx context.Context, tx *sql.Tx, app int64) error {
	_, err := s.bumpApp(ctx, tx, app)
	return err
}

// bumpApp is bump, returning the new revision.
func (s *Store) bumpApp(ctx context.Context, tx *sql.Tx, app int64) (int64, error) {
	// The app's row is locked before meta's, the one row every write
	// shares: UpdateApp and lockApp hold an app's row while they go on
	// to write, so taking meta first here would deadlock with them on
	// PostgreSQL. Whoever waits for the app's row now holds nothing
	// another writer of the app needs. After DeleteApp there is no row.
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE apps SET revision = revision WHERE id = ?`), app); err != nil {
		return 0, fmt.Errorf("lock app: %w", err)
	}
	var rev int64
	if err := tx.QueryRowContext(ctx, `UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("bump revision: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE apps SET revision = ? WHERE id = ?`), rev, app); err != nil {
		return 0, fmt.Errorf("app revision: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO app_changes (revision, app_id) VALUES (?, ?)`), rev, app); err != nil {
		return 0, fmt.Errorf("record change: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM app_changes WHERE revision <= ?`), rev-s.keep.Load()); err != nil {
		return 0, fmt.Errorf("trim change log: %w", err)
	}
	if s.d.Notify != "" {
		if _, err := tx.ExecContext(ctx, s.q(s.d.Notify), FormatChange(mds.Change{Revision: rev, AppID: app})); err != nil {
			return 0, fmt.Errorf("notify: %w", err)
		}
	}
	return rev, nil
}

// lockApp locks app id's row for the rest of tx, so that writes which
// check something of the app before they write (its team keys, its
// hotpatches' versions) serialise on PostgreSQL; SQLite has one writer.
// It is an update that changes no key, which PostgreSQL locks FOR NO KEY
// UPDATE rather than FOR UPDATE: inserting a row that refers to the app (a
// blob record, an artifact) checks its foreign key FOR KEY SHARE, which
// FOR UPDATE blocks, so two uploads that had each recorded their blob and
// then asked for FOR UPDATE would wait for each other. An unknown app is
// ENOTFOUND.
func (s *Store) lockApp(ctx context.Context, tx *sql.Tx, id int64) error {
	res, err := tx.ExecContext(ctx, s.q(`UPDATE apps SET revision = revision WHERE id = ?`), id)
	return rowsAffected(res, err, "app %d not found", id)
}

// changeLog is how many of the newest revisions app_changes remembers by
// default: a node less far behind than that recompiles only the apps that
// changed.
const changeLog = 10_000

// FormatChange is how a change is announced to other nodes: its revision
// and app, in decimal, separated by a space.
func FormatChange(c mds.Change) string {
	return strconv.FormatInt(c.Revision, 10) + " " + strconv.FormatInt(c.AppID, 10)
}

// ParseChange reads what FormatChange wrote.
func ParseChange(payload string) (mds.Change, error) {
	rev, app, ok := strings.Cut(payload, " ")
	var c mds.Change
	var err1, err2 error
	c.Revision, err1 = strconv.ParseInt(rev, 10, 64)
	c.AppID, err2 = strconv.ParseInt(app, 10, 64)
	if !ok || err1 != nil || err2 != nil || c.Revision <= 0 || c.AppID <= 0 {
		return mds.Change{}, fmt.Errorf("change announcement %q is not a revision and an app ID", payload)
	}
	return c, nil
}

// Revision returns the current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.read.QueryRowContext(ctx, `SELECT revision FROM meta WHERE id = 1`).Scan(&rev)
	return rev, err
}

func (s *Store) now() time.Time { return s.Now().UTC().Truncate(time.Millisecond) }

// Times are stored as Unix milliseconds: both databases compare and index
// integers alike, and no driver converts them differently.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// notFound turns sql.ErrNoRows into an ENOTFOUND with msg.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return mds.Errorf(mds.ENOTFOUND, format, args...)
	}
	return err
}

// conflict turns a unique violation into an ECONFLICT with msg.
func (s *Store) conflict(err error, format string, args ...any) error {
	if err != nil && s.d.IsUnique(err) {
		return mds.Errorf(mds.ECONFLICT, format, args...)
	}
	return err
}

// refused turns a foreign-key violation into an error of code with msg:
// the database refusing a reference that does not exist (ENOTFOUND) or a
// delete of something still referred to (ECONFLICT).
func (s *Store) refused(err error, code, format string, args ...any) error {
	if err != nil && s.d.IsForeignKey(err) {
		return mds.Errorf(code, format, args...)
	}
	return err
}

// idPage is keyset pagination over an ID column, newest first when desc:
// the condition (with a leading AND), ORDER BY and LIMIT, and their
// arguments.
func idPage(p mds.Page, column string, desc bool) (string, []any, error) {
	if err := p.Validate(); err != nil {
		return "", nil, err
	}
	cmp, order := ">", ""
	if desc {
		cmp, order = "<", " DESC"
	}
	if p.After == "" {
		return ` ORDER BY ` + column + order + ` LIMIT ?`, []any{p.Limit}, nil
	}
	after, err := strconv.ParseInt(p.After, 10, 64)
	if err != nil || after <= 0 {
		return "", nil, mds.Errorf(mds.EINVALID, "cursor %q is not one this list gave: pass the next value of the previous page", p.After)
	}
	return ` AND ` + column + ` ` + cmp + ` ? ORDER BY ` + column + order + ` LIMIT ?`, []any{after, p.Limit}, nil
}

// namePage is keyset pagination over a unique text column, in order.
func namePage(p mds.Page, column string) (string, []any, error) {
	if err := p.Validate(); err != nil {
		return "", nil, err
	}
	return ` AND ` + column + ` > ? ORDER BY ` + column + ` LIMIT ?`, []any{p.After, p.Limit}, nil
}

// marks is n comma-separated placeholders, for IN lists.
func marks(n int) string { return strings.Repeat(",?", n)[1:] }

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, err error, scan func(scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
