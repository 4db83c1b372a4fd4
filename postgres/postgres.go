// Package postgres opens the store on PostgreSQL through pgx, migrated on
// open. Several mds nodes may share one database; migrations take a session
// lock so that nodes starting together do not race.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mds-dev/mds/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects to the database at url (a postgres:// URL or key=value DSN)
// and migrates it.
func Open(ctx context.Context, url string) (*sqlstore.Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return sqlstore.New(db, db, sqlstore.Dialect{
		Numbered:  true,
		ForUpdate: " FOR UPDATE",
		ReadTx:    &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		IsUnique:  isUnique,
	}), nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}
