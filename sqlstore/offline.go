package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// What the store keeps of offline packages: every version each package
// took (offline_versions), which were released, and the deltas between
// released versions, which builders claim, build and finish.

// checkOffline refuses offline package a unless its version is above
// every version its package ever had in the app. It locks the app's row
// first, so that two uploads cannot both take one version; the unique
// constraint on offline_versions is the backstop.
func (s *Store) checkOffline(ctx context.Context, tx *sql.Tx, a *mds.Artifact) error {
	if err := s.lockApp(ctx, tx, a.AppID); err != nil {
		return err
	}
	return s.offlineRefusal(ctx, tx, a)
}

// offlineRefusal is why CreateArtifact refuses offline package a, read
// through q: a team key the app has not registered or retired; a version
// not above the newest its package had, or the same but for case (a
// device names a version's directory by it, on file systems that may not
// tell case apart); a host another package of the app serves (a WebView's
// URL must name one package); or a package beyond the MaxOfflineHeld an
// app may ever have, which bounds what a device can come to hold.
func (s *Store) offlineRefusal(ctx context.Context, q interface {
	querier
	rowQuerier
}, a *mds.Artifact) error {
	p, err := offlineSpec(a)
	if err != nil {
		return err
	}
	if err := s.teamKeyRefusal(ctx, q, a.AppID, p.KeyID, "offline package"); err != nil {
		return err
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT version FROM offline_versions WHERE app_id = ? AND package = ?`), a.AppID, p.Package)
	versions, err := collect(rows, err, scanString)
	if err != nil {
		return err
	}
	newest := ""
	for _, v := range versions {
		if newest == "" || version.Compare(v, newest) > 0 {
			newest = v
		}
		if strings.EqualFold(v, a.Version) && v != a.Version {
			return mds.Errorf(mds.ECONFLICT, "offline package %s version %s differs from its version %s only in case; devices keep versions in directories named by them: choose another version", p.Package, a.Version, v)
		}
	}
	if newest != "" && version.Compare(a.Version, newest) <= 0 {
		return mds.Errorf(mds.ECONFLICT, "offline package %s version %s is not above %s, its newest version in this app; pack it with a higher --version",
			p.Package, a.Version, newest)
	}
	var other string
	// Deleted versions count: devices keep what they installed.
	err = q.QueryRowContext(ctx, s.q(`SELECT package FROM offline_versions WHERE app_id = ? AND host = ? AND package <> ? LIMIT 1`),
		a.AppID, p.Host, p.Package).Scan(&other)
	switch {
	case err == nil:
		return mds.Errorf(mds.ECONFLICT, "host %s is served by offline package %s of this app; a WebView's URL must name one package: give %s a host of its own", p.Host, other, p.Package)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	if len(versions) == 0 {
		var n int
		if err := q.QueryRowContext(ctx, s.q(`SELECT COUNT(DISTINCT package) FROM offline_versions WHERE app_id = ?`), a.AppID).Scan(&n); err != nil {
			return err
		}
		if n >= mds.MaxOfflineHeld {
			return mds.Errorf(mds.ECONFLICT, "the app has had %d offline packages, the most a device may hold (devices keep the packages they installed, so deleting one frees no place); ship %s as a new version of one of them", n, p.Package)
		}
	}
	return nil
}

// recordOffline records the version of offline package a, stored now.
func (s *Store) recordOffline(ctx context.Context, tx *sql.Tx, a *mds.Artifact) error {
	p, err := offlineSpec(a)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO offline_versions (app_id, package, version, host, artifact_id) VALUES (?, ?, ?, ?, ?)`),
		a.AppID, p.Package, a.Version, p.Host, a.ID)
	if err != nil && s.d.IsUnique(err) {
		return mds.Errorf(mds.ECONFLICT, "offline package %s version %s was stored just now by another upload", p.Package, a.Version)
	}
	return err
}

func offlineSpec(a *mds.Artifact) (*mds.OfflineSpec, error) {
	p, ok := a.Spec.(*mds.OfflineSpec)
	if !ok {
		return nil, fmt.Errorf("offline artifact with a %T spec", a.Spec)
	}
	return p, nil
}

func scanString(r scanner) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}

// releaseOffline records, when task t first makes its version of an
// offline package live, that the version was released, and a pending
// delta to it from each of the newest DeltaBases versions of its package
// released before it and older than it.
func (s *Store) releaseOffline(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	var pkg, ver string
	var released sql.NullInt64
	err := tx.QueryRowContext(ctx, s.q(`SELECT package, version, released_at FROM offline_versions WHERE app_id = ? AND artifact_id = ?`),
		t.AppID, t.ArtifactID).Scan(&pkg, &ver, &released)
	if errors.Is(err, sql.ErrNoRows) || err == nil && released.Valid {
		return nil // checkRefs found the artifact; it is released already
	}
	if err != nil {
		return err
	}
	now := s.now()
	// Another transaction may release the version first: on PostgreSQL
	// this update then waits for it and changes nothing, and that one
	// queues the deltas.
	res, err := tx.ExecContext(ctx, s.q(`UPDATE offline_versions SET released_at = ? WHERE app_id = ? AND artifact_id = ? AND released_at IS NULL`),
		millis(now), t.AppID, t.ArtifactID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT artifact_id, version FROM offline_versions
		WHERE app_id = ? AND package = ? AND released_at IS NOT NULL AND artifact_id IS NOT NULL AND artifact_id <> ?`),
		t.AppID, pkg, t.ArtifactID)
	type base struct {
		id      int64
		version string
	}
	bases, err := collect(rows, err, func(r scanner) (base, error) {
		var b base
		err := r.Scan(&b.id, &b.version)
		return b, err
	})
	if err != nil {
		return err
	}
	bases = slices.DeleteFunc(bases, func(b base) bool { return version.Compare(b.version, ver) >= 0 })
	slices.SortFunc(bases, func(a, b base) int { return version.Compare(b.version, a.version) })
	n := int(s.deltaBases.Load())
	for _, b := range bases[:min(n, len(bases))] {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO deltas (app_id, from_id, to_id, status, reason, attempts, lease, build_ms, created_at, updated_at)
			VALUES (?, ?, ?, ?, '', 0, 0, 0, ?, ?) ON CONFLICT DO NOTHING`), t.AppID, b.id, t.ArtifactID, mds.DeltaPending, millis(now), millis(now))
		if err != nil {
			return fmt.Errorf("queue delta %d→%d: %w", b.id, t.ArtifactID, err)
		}
	}
	return nil
}

// SetDeltaBases sets how many earlier released versions a newly released
// version of an offline package gets deltas from (mds.DefaultDeltaBases
// unless set), at most mds.MaxDeltaBases; 0 builds none.
func (s *Store) SetDeltaBases(n int) { s.deltaBases.Store(int64(min(max(n, 0), mds.MaxDeltaBases))) }

const deltaColumns = `d.app_id, v.package, d.from_id, f.version, d.to_id, t.version, d.status, d.sha256, d.size, d.reason,
	d.attempts, d.lease, d.build_ms, d.created_at, d.updated_at`

// deltaFrom joins a delta with its versions and its target's package.
const deltaFrom = ` FROM deltas d JOIN artifacts f ON f.id = d.from_id JOIN artifacts t ON t.id = d.to_id
	JOIN offline_versions v ON v.artifact_id = d.to_id`

func scanDelta(r scanner) (*mds.Delta, error) {
	var d mds.Delta
	var sum sql.NullString
	var size sql.NullInt64
	var lease, created, updated int64
	err := r.Scan(&d.AppID, &d.Package, &d.From, &d.FromVersion, &d.To, &d.ToVersion, &d.Status, &sum, &size, &d.Reason,
		&d.Attempts, &lease, &d.BuildMillis, &created, &updated)
	if err != nil {
		return nil, err
	}
	d.SHA256, d.Size = sum.String, size.Int64
	switch {
	case lease != 0 && d.Status == mds.DeltaPending:
		d.RetryAt = fromMillis(lease)
	case lease != 0:
		d.Lease = fromMillis(lease)
	}
	d.CreatedAt, d.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &d, nil
}

// ClaimDelta implements mds.DeltaStore. On PostgreSQL the row is locked
// SKIP LOCKED, so racing builders each take another; SQLite has one
// writer. The lease is checked again by the update, which is what makes
// a claim exclusive.
func (s *Store) ClaimDelta(ctx context.Context, lease time.Duration) (*mds.Delta, error) {
	var d *mds.Delta
	err := s.transact(ctx, func(tx *sql.Tx) error {
		now := s.now()
		lock := s.d.ForUpdate
		if lock != "" {
			lock += " OF d SKIP LOCKED"
		}
		var err error
		d, err = scanDelta(tx.QueryRowContext(ctx, s.q(`SELECT `+deltaColumns+deltaFrom+`
			WHERE (d.status = ? AND d.lease <= ?) OR (d.status = ? AND d.lease < ?) ORDER BY d.created_at, d.to_id, d.from_id LIMIT 1`+lock),
			mds.DeltaPending, millis(now), mds.DeltaBuilding, millis(now)))
		if errors.Is(err, sql.ErrNoRows) {
			d = nil
			return nil
		}
		if err != nil {
			return err
		}
		d.Status, d.Lease, d.UpdatedAt = mds.DeltaBuilding, now.Add(lease), now
		d.Attempts++
		res, err := tx.ExecContext(ctx, s.q(`UPDATE deltas SET status = ?, lease = ?, attempts = ?, updated_at = ?
			WHERE from_id = ? AND to_id = ? AND ((status = ? AND lease <= ?) OR (status = ? AND lease < ?))`),
			d.Status, millis(d.Lease), d.Attempts, millis(now), d.From, d.To, mds.DeltaPending, millis(now), mds.DeltaBuilding, millis(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			d = nil // another builder took it between the read and the update
			return err
		}
		return nil
	})
	return d, err
}

// FinishDelta implements mds.DeltaStore.
func (s *Store) FinishDelta(ctx context.Context, d *mds.Delta, blob *mds.Blob) error {
	switch d.Status {
	case mds.DeltaReady:
		if blob == nil {
			return fmt.Errorf("delta %s is ready without its file", d)
		}
	case mds.DeltaSkipped, mds.DeltaFailed, mds.DeltaPending:
		blob = nil
	default:
		return fmt.Errorf("delta %s cannot finish %s", d, d.Status)
	}
	if err := mds.ValidText("reason", d.Reason, mds.MaxNotes, true); err != nil {
		d.Reason = "the builder's reason could not be kept"
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		now := s.now()
		var sum sql.NullString
		var size sql.NullInt64
		if blob != nil {
			if err := s.addBlob(ctx, tx, d.AppID, *blob, "delta builder"); err != nil {
				return s.refused(err, mds.ECONFLICT, "delta %s: its app was deleted while it was built", d)
			}
			sum, size = sql.NullString{String: blob.SHA256, Valid: true}, sql.NullInt64{Int64: blob.Size, Valid: true}
		} else if d.Size > 0 {
			size = sql.NullInt64{Int64: d.Size, Valid: true}
		}
		// A pending delta waits until its retry time, kept in lease.
		var retry int64
		if d.Status == mds.DeltaPending && !d.RetryAt.IsZero() {
			retry = millis(d.RetryAt)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE deltas SET status = ?, sha256 = ?, size = ?, reason = ?, lease = ?, attempts = ?, build_ms = ?, updated_at = ?
			WHERE app_id = ? AND from_id = ? AND to_id = ? AND status = ? AND lease = ?`),
			d.Status, sum, size, d.Reason, retry, max(d.Attempts, 0), d.BuildMillis, millis(now), d.AppID, d.From, d.To, mds.DeltaBuilding, millis(d.Lease))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return mds.Errorf(mds.ECONFLICT, "delta %s is no longer this builder's: its lease ran out and another took it, or its packages were deleted", d)
		}
		d.UpdatedAt = now
		if blob != nil {
			d.SHA256, d.Size = blob.SHA256, blob.Size
			// Devices that hold the base are told of the delta.
			return s.bump(ctx, tx, d.AppID)
		}
		return nil
	})
}

// ListDeltas implements mds.DeltaStore.
func (s *Store) ListDeltas(ctx context.Context, appID int64, pkg string) ([]*mds.Delta, error) {
	where, args := ` WHERE d.app_id = ?`, []any{appID}
	if pkg != "" {
		where += ` AND v.package = ?`
		args = append(args, pkg)
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+deltaColumns+deltaFrom+where+` ORDER BY d.to_id DESC, d.from_id DESC`), args...)
	return collect(rows, err, scanDelta)
}

// deltasTo reads the ready deltas to the offline packages of list, a
// bounded number of IDs per query.
func (s *Store) deltasTo(ctx context.Context, q querier, list []*mds.Artifact) ([]*mds.Delta, error) {
	var ids []any
	for _, a := range list {
		if a.Kind == mds.KindOffline {
			ids = append(ids, a.ID)
		}
	}
	var out []*mds.Delta
	for chunk := range slices.Chunk(ids, entryBatch) {
		rows, err := q.QueryContext(ctx, s.q(`SELECT `+deltaColumns+deltaFrom+` WHERE d.status = ? AND d.to_id IN (`+marks(len(chunk))+`)`),
			append([]any{mds.DeltaReady}, chunk...)...)
		list, err := collect(rows, err, scanDelta)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}
