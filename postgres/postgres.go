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
	"time"

	"github.com/jackc/pgx/v5"
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
		Notify:    `NOTIFY ` + Channel,
	}), nil
}

// Channel is the NOTIFY channel on which writes announce a new revision.
const Channel = "mds_revision"

// Listen calls changed whenever another connection commits a write that
// moves the revision, until ctx ends. It holds one connection of its own
// and reconnects, calling changed after each reconnect too, since writes
// may have been missed meanwhile. Errors go to onError; polling the
// revision remains the safety net, this only makes nodes hear sooner.
func Listen(ctx context.Context, url string, changed func(), onError func(error)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := listen(ctx, url, changed)
		if ctx.Err() != nil {
			return
		}
		if onError != nil {
			onError(fmt.Errorf("postgres: listen for changes: %w", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func listen(ctx context.Context, url string, changed func()) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return err
	}
	changed() // anything committed before LISTEN took effect
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		changed()
	}
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
