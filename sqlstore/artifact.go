package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/mds-dev/mds"
)

const artifactColumns = `id, app_id, kind, platform, version, spec, created_at, created_by`

// CreateArtifact implements mds.ArtifactStore. The uploaded blobs are
// recorded first, in order of digest, before anything of the kind's that
// locks the app: a transaction then never waits for a blob while it holds
// the app, and two that record the same blobs take them in one order.
func (s *Store) CreateArtifact(ctx context.Context, a *mds.Artifact, uploaded ...mds.Blob) error {
	a.CreatedAt = s.now()
	spec, err := encodeJSON(a.Spec)
	if err != nil {
		return err
	}
	hook := artifactHooks[a.Kind]
	uploaded = slices.SortedFunc(slices.Values(uploaded), func(x, y mds.Blob) int { return strings.Compare(x.SHA256, y.SHA256) })
	return s.transact(ctx, func(tx *sql.Tx) error {
		for _, b := range uploaded {
			if err := s.addBlob(ctx, tx, a.AppID, b, a.CreatedBy); err != nil {
				return err
			}
		}
		if hook.check != nil {
			if err := hook.check(s, ctx, tx, a); err != nil {
				return err
			}
		}
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO artifacts (app_id, kind, platform, version, spec, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			a.AppID, a.Kind, a.Platform, a.Version, string(spec), millis(a.CreatedAt), a.CreatedBy).Scan(&a.ID)
		if err != nil {
			return s.refused(err, mds.ENOTFOUND, "app %d not found", a.AppID)
		}
		for _, b := range a.Blobs {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO artifact_blobs (app_id, artifact_id, role, sha256, size) VALUES (?, ?, ?, ?, ?)`),
				a.AppID, a.ID, b.Role, b.SHA256, b.Size)
			if err != nil {
				err = s.refused(err, mds.EINVALID, "this app has no uploaded file with sha256 %s of %d bytes; upload it first", b.SHA256, b.Size)
				return s.conflict(err, "the artifact names its %s file twice", b.Role)
			}
		}
		if hook.record != nil {
			return hook.record(s, ctx, tx, a)
		}
		return nil
	})
}

// CheckArtifact implements mds.ArtifactStore.
func (s *Store) CheckArtifact(ctx context.Context, a *mds.Artifact) error {
	switch a.Kind {
	case mds.KindHotpatch:
		return s.hotpatchRefusal(ctx, s.read, a)
	case mds.KindOffline:
		return s.offlineRefusal(ctx, s.read, a)
	}
	return nil
}

// artifactHook is what a kind keeps beside its artifacts, in the
// artifact's transaction: check may refuse the artifact before it is
// stored, record writes what the kind keeps once the artifact has its ID.
type artifactHook struct {
	check, record func(s *Store, ctx context.Context, tx *sql.Tx, a *mds.Artifact) error
}

// artifactHooks are the kinds that keep anything beside their artifacts.
var artifactHooks = map[mds.Kind]artifactHook{
	mds.KindHotpatch: {check: (*Store).checkHotpatch, record: (*Store).recordHotpatch},
	mds.KindOffline:  {check: (*Store).checkOffline, record: (*Store).recordOffline},
}

// FindArtifact implements mds.ArtifactStore.
func (s *Store) FindArtifact(ctx context.Context, appID, id int64) (*mds.Artifact, error) {
	a, err := s.artifacts(ctx, s.read, `WHERE app_id = ? AND id = ?`, appID, id)
	if err != nil {
		return nil, err
	}
	if len(a) == 0 {
		return nil, mds.Errorf(mds.ENOTFOUND, "package %d not found in this app", id)
	}
	return a[0], nil
}

// ListArtifacts implements mds.ArtifactStore.
func (s *Store) ListArtifacts(ctx context.Context, appID int64, kind mds.Kind, p mds.Page) ([]*mds.Artifact, error) {
	where, args := `WHERE app_id = ?`, []any{appID}
	if kind != "" {
		where += ` AND kind = ?`
		args = append(args, kind)
	}
	page, pageArgs, err := idPage(p, "id", true)
	if err != nil {
		return nil, err
	}
	return s.artifacts(ctx, s.read, where+page, append(args, pageArgs...)...)
}

// DeleteArtifact implements mds.ArtifactStore.
func (s *Store) DeleteArtifact(ctx context.Context, appID, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		var task int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM tasks WHERE app_id = ? AND artifact_id = ? LIMIT 1`), appID, id).Scan(&task)
		switch {
		case err == nil:
			return mds.Errorf(mds.ECONFLICT, "task %d delivers package %d; delete the task first (stop it if it is running)", task, id)
		case err != sql.ErrNoRows:
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM artifacts WHERE app_id = ? AND id = ?`), appID, id)
		err = s.refused(err, mds.ECONFLICT, "package %d is in use by a task created just now", id)
		return rowsAffected(res, err, "package %d not found in this app", id)
	})
}

// artifacts reads the artifacts matching where, with their blobs.
func (s *Store) artifacts(ctx context.Context, q querier, where string, args ...any) ([]*mds.Artifact, error) {
	rows, err := q.QueryContext(ctx, s.q(`SELECT `+artifactColumns+` FROM artifacts `+where), args...)
	list, err := collect(rows, err, scanArtifact)
	if err != nil || len(list) == 0 {
		return list, err
	}
	return list, s.attachBlobs(ctx, q, list)
}

// attachBlobs fills in the blobs of list from artifact_blobs, a bounded
// number of IDs per query so that no list outgrows a statement's limit on
// parameters.
func (s *Store) attachBlobs(ctx context.Context, q querier, list []*mds.Artifact) error {
	byID := make(map[int64]*mds.Artifact, len(list))
	for _, a := range list {
		byID[a.ID] = a
	}
	for chunk := range slices.Chunk(list, entryBatch) {
		ids := make([]any, len(chunk))
		marks := strings.Repeat(",?", len(chunk))[1:]
		for i, a := range chunk {
			ids[i] = a.ID
		}
		rows, err := q.QueryContext(ctx, s.q(`SELECT artifact_id, role, sha256, size FROM artifact_blobs
			WHERE artifact_id IN (`+marks+`) ORDER BY artifact_id, role`), ids...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id int64
			var b mds.BlobRef
			if err := rows.Scan(&id, &b.Role, &b.SHA256, &b.Size); err != nil {
				rows.Close()
				return err
			}
			byID[id].Blobs = append(byID[id].Blobs, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func scanArtifact(r scanner) (*mds.Artifact, error) {
	var a mds.Artifact
	var spec string
	var created int64
	if err := r.Scan(&a.ID, &a.AppID, &a.Kind, &a.Platform, &a.Version, &spec, &created, &a.CreatedBy); err != nil {
		return nil, err
	}
	var err error
	if a.Spec, err = mds.DecodeSpec(a.Kind, []byte(spec)); err != nil {
		return nil, fmt.Errorf("artifact %d: %w", a.ID, err)
	}
	a.CreatedAt = fromMillis(created)
	return &a, nil
}
