package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/mds-dev/mds"
)

const packageColumns = `id, app_id, platform, version, build, notes, source, sha256, size, url, file_name,
	app_versions, channel, network, silent, enterprise, bundle_id, title, created_at, created_by`

// CreatePackage implements mds.PackageStore.
func (s *Store) CreatePackage(ctx context.Context, p *mds.Package) error {
	p.CreatedAt = s.now()
	ranges, err := json.Marshal(p.AppVersions)
	if err != nil {
		return err
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, s.q(`INSERT INTO packages (app_id, platform, version, build, notes,
			source, sha256, size, url, file_name, app_versions, channel, network, silent, enterprise,
			bundle_id, title, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			p.AppID, p.Platform, p.Version, p.Build, p.Notes, p.Source, p.SHA256, p.Size, p.URL,
			p.FileName, string(ranges), p.Channel, p.Network, p.Silent, p.Enterprise, p.BundleID,
			p.Title, millis(p.CreatedAt), p.CreatedBy).Scan(&p.ID)
	})
}

// FindPackage implements mds.PackageStore.
func (s *Store) FindPackage(ctx context.Context, appID, id int64) (*mds.Package, error) {
	p, err := scanPackage(s.read.QueryRowContext(ctx,
		s.q(`SELECT `+packageColumns+` FROM packages WHERE app_id = ? AND id = ?`), appID, id))
	return p, notFound(err, "package %d not found in this app", id)
}

// ListPackages implements mds.PackageStore.
func (s *Store) ListPackages(ctx context.Context, appID int64) ([]*mds.Package, error) {
	rows, err := s.read.QueryContext(ctx,
		s.q(`SELECT `+packageColumns+` FROM packages WHERE app_id = ? ORDER BY id DESC`), appID)
	return collect(rows, err, scanPackage)
}

func scanPackage(r scanner) (*mds.Package, error) {
	var p mds.Package
	var ranges string
	var created int64
	err := r.Scan(&p.ID, &p.AppID, &p.Platform, &p.Version, &p.Build, &p.Notes, &p.Source, &p.SHA256,
		&p.Size, &p.URL, &p.FileName, &ranges, &p.Channel, &p.Network, &p.Silent, &p.Enterprise,
		&p.BundleID, &p.Title, &created, &p.CreatedBy)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ranges), &p.AppVersions); err != nil {
		return nil, fmt.Errorf("package %d: app_versions: %w", p.ID, err)
	}
	p.CreatedAt = fromMillis(created)
	return &p, nil
}
