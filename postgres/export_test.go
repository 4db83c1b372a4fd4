package postgres

import (
	"context"
	"database/sql"
)

// OpenAt connects to url and migrates it to schema version only, for tests
// of later migrations.
func OpenAt(ctx context.Context, url string, version int64) (*sql.DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, db, version); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
