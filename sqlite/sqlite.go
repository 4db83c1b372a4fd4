// Package sqlite opens the embedded store: one SQLite file in WAL mode, one
// writer connection and a pool of readers, migrated on open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mds-dev/mds/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// pragmas apply to every connection. synchronous(FULL) makes each commit
// durable; management writes are rare enough not to notice.
var pragmas = []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"}

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	write, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, err
	}
	// SQLite allows one writer at a time; one connection makes writers queue
	// in Go instead of failing with SQLITE_BUSY.
	write.SetMaxOpenConns(1)
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		write.Close()
		return nil, err
	}
	return sqlstore.New(read, write, sqlstore.Dialect{IsUnique: isUnique}), nil
}

func dsn(path string, writer bool) string {
	q := url.Values{"_pragma": pragmas}
	if writer {
		// Take the write lock at BEGIN, not at the first write, so a
		// transaction never fails midway upgrading a read lock.
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
