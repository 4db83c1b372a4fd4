package sqlite

import (
	"context"
	"database/sql"

	"github.com/mds-dev/mds/sqlstore"
)

// OpenAt opens the database file at path migrated to schema version only,
// as the writer connection, for tests of later migrations.
func OpenAt(ctx context.Context, path string, version int64) (*sql.DB, error) {
	db, err := OpenDB(path, true)
	if err != nil {
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, db, Dialect, version); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
