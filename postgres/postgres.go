// Package postgres opens the store on PostgreSQL through pgx, migrated on
// open. Several mds nodes may share one database; migrations take a session
// lock so that nodes starting together do not race.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/sqlstore"
)

// Dialect is how PostgreSQL differs.
var Dialect = sqlstore.Dialect{
	Name:         sqlstore.Postgres,
	Numbered:     true,
	ForUpdate:    " FOR UPDATE",
	ReadTx:       &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	IsUnique:     isUnique,
	IsForeignKey: isForeignKey,
	Notify:       `SELECT pg_notify('` + Channel + `', ?)`,
}

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
	if err := migrate(ctx, db, sqlstore.SchemaVersion); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return sqlstore.New(db, db, Dialect), nil
}

// Channel is the NOTIFY channel on which writes announce a change: its
// revision and app (sqlstore.FormatChange).
const Channel = "mds_revision"

// Listen calls changed with every change another connection commits, until
// ctx ends. It holds one connection of its own and reconnects; after each
// connect it calls changed with the zero Change, since writes may have been
// missed meanwhile. Errors go to onError; polling the revision remains the
// safety net, this only makes nodes hear sooner.
func Listen(ctx context.Context, url string, changed func(mds.Change), onError func(error)) {
	listenLoop(ctx, func(ctx context.Context, listening func()) error {
		return listen(ctx, url, listening, changed)
	}, onError, sleep)
}

// Reconnection waits: doubling from the first to the last, and back to
// the first once a connection has listened, so that a blip after days of
// service is retried at once rather than after the longest wait.
const (
	firstBackoff = 100 * time.Millisecond
	lastBackoff  = 10 * time.Second
)

// listenLoop runs session until ctx ends, waiting between failed sessions.
// A session calls listening once it is established.
func listenLoop(ctx context.Context, session func(ctx context.Context, listening func()) error, onError func(error),
	wait func(context.Context, time.Duration) bool) {
	backoff := firstBackoff
	for ctx.Err() == nil {
		err := session(ctx, func() { backoff = firstBackoff })
		if ctx.Err() != nil {
			return
		}
		if onError != nil {
			onError(fmt.Errorf("postgres: listen for changes: %w", err))
		}
		if !wait(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, lastBackoff)
	}
}

// sleep waits d or until ctx ends, reporting whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func listen(ctx context.Context, url string, listening func(), changed func(mds.Change)) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+Channel); err != nil {
		return err
	}
	listening()
	changed(mds.Change{}) // anything committed before LISTEN took effect
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		// A payload that does not parse, from a node of an older version
		// during a rolling upgrade say, is heard as the zero Change:
		// "something changed".
		c, _ := sqlstore.ParseChange(n.Payload)
		changed(c)
	}
}

func migrate(ctx context.Context, db *sql.DB, version int64) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	return sqlstore.Migrate(ctx, db, Dialect, version, goose.WithSessionLocker(locker))
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}

func isForeignKey(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}
