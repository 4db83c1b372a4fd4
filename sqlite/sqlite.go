// Package sqlite opens the embedded store: one SQLite file in WAL mode, one
// writer connection and a pool of readers, migrated on open.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mds-dev/mds/sqlstore"
)

// pragmas apply to every connection. synchronous(FULL) makes each commit
// durable; management writes are rare enough not to notice.
var pragmas = []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"}

// Dialect is how SQLite differs.
var Dialect = sqlstore.Dialect{Name: sqlstore.SQLite, IsUnique: isUnique, IsForeignKey: isForeignKey}

// Open opens (creating if needed) the database file at path and migrates it.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	write, err := OpenDB(path, true)
	if err != nil {
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, write, Dialect, sqlstore.SchemaVersion); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	read, err := OpenDB(path, false)
	if err != nil {
		write.Close()
		return nil, err
	}
	return sqlstore.New(read, write, Dialect), nil
}

// OpenDB opens the database file at path without migrating it: the one
// writer connection (writer) or a pool of readers.
func OpenDB(path string, writer bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, writer))
	if err != nil {
		return nil, err
	}
	if writer {
		// SQLite allows one writer at a time; one connection makes writers
		// queue in Go instead of failing with SQLITE_BUSY.
		db.SetMaxOpenConns(1)
	}
	return db, nil
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

func isUnique(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
