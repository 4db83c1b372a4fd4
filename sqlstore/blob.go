package sqlstore

import (
	"context"
	"database/sql"

	"github.com/mds-dev/mds"
)

// AddBlob implements mds.BlobRecordStore.
func (s *Store) AddBlob(ctx context.Context, appID int64, b mds.Blob, actor string) error {
	return s.transact(ctx, func(tx *sql.Tx) error { return s.addBlob(ctx, tx, appID, b, actor) })
}

// addBlob records in tx that app appID holds b, keeping an earlier record.
func (s *Store) addBlob(ctx context.Context, tx *sql.Tx, appID int64, b mds.Blob, actor string) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO blobs (app_id, sha256, size, created_at, created_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (app_id, sha256) DO NOTHING`), appID, b.SHA256, b.Size, millis(s.now()), actor)
	return s.refused(err, mds.ENOTFOUND, "app %d not found", appID)
}

// FindBlob implements mds.BlobRecordStore.
func (s *Store) FindBlob(ctx context.Context, appID int64, sum string) (mds.Blob, error) {
	var b mds.Blob
	var created int64
	err := s.read.QueryRowContext(ctx, s.q(`SELECT sha256, size, created_at FROM blobs WHERE app_id = ? AND sha256 = ?`), appID, sum).
		Scan(&b.SHA256, &b.Size, &created)
	if err != nil {
		return mds.Blob{}, notFound(err, "this app has no uploaded file with sha256 %s; upload it first", sum)
	}
	b.ModTime = fromMillis(created)
	return b, nil
}
