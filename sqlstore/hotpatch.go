package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mds-dev/mds"
)

// Team keys and what the store keeps of hotpatches. Neither moves the
// revision: a key is not device-visible, and a hotpatch reaches devices
// only through a task, whose writes move it.

const teamKeyColumns = `app_id, id, alg, pem, name, created_at, created_by, retired_at, retired_by`

// AddTeamKey implements mds.TeamKeyStore. The app's row is locked first,
// so that adds to one app serialise and the count that enforces
// MaxTeamKeys is exact however many race.
func (s *Store) AddTeamKey(ctx context.Context, k *mds.TeamKey) error {
	k.CreatedAt = s.now()
	k.RetiredAt, k.RetiredBy = nil, ""
	return s.transact(ctx, func(tx *sql.Tx) error {
		if err := s.lockApp(ctx, tx, k.AppID); err != nil {
			return err
		}
		old, err := s.findTeamKey(ctx, tx, k.AppID, k.ID, "")
		switch {
		case err == nil && old.Active():
			return mds.Errorf(mds.ECONFLICT, "key %s is already registered with this app, as %q", k.ID, old.Name)
		case err == nil:
			return mds.Errorf(mds.ECONFLICT, "key %s was registered with this app and retired on %s; a retired key cannot come back: generate a new one",
				k.ID, old.RetiredAt.Format(time.RFC3339))
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM team_keys WHERE app_id = ?`), k.AppID).Scan(&n); err != nil {
			return err
		}
		if n >= mds.MaxTeamKeys {
			return mds.Errorf(mds.ECONFLICT, "the app has %d keys, retired ones included, the most it may register", n)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO team_keys (app_id, id, alg, pem, name, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), k.AppID, k.ID, k.Alg, k.PEM, k.Name, millis(k.CreatedAt), k.CreatedBy)
		err = s.refused(err, mds.ENOTFOUND, "app %d not found", k.AppID)
		return s.conflict(err, "key %s is already registered with this app", k.ID)
	})
}

// FindTeamKey implements mds.TeamKeyStore.
func (s *Store) FindTeamKey(ctx context.Context, appID int64, id string) (*mds.TeamKey, error) {
	k, err := s.findTeamKey(ctx, s.read, appID, id, "")
	return k, notFound(err, "key %s is not registered with this app", id)
}

// findTeamKey reads key id of app appID, with lock appended to the
// SELECT; a missing key is sql.ErrNoRows.
func (s *Store) findTeamKey(ctx context.Context, q rowQuerier, appID int64, id, lock string) (*mds.TeamKey, error) {
	return scanTeamKey(q.QueryRowContext(ctx, s.q(`SELECT `+teamKeyColumns+` FROM team_keys WHERE app_id = ? AND id = ?`+lock), appID, id))
}

// ListTeamKeys implements mds.TeamKeyStore. An app has at most
// MaxTeamKeys keys, so the list needs no pages.
func (s *Store) ListTeamKeys(ctx context.Context, appID int64) ([]*mds.TeamKey, error) {
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+teamKeyColumns+` FROM team_keys WHERE app_id = ? ORDER BY created_at, id`), appID)
	return collect(rows, err, scanTeamKey)
}

// RetireTeamKey implements mds.TeamKeyStore. The key's row is locked, so
// of two retirements racing one wins and the other is told.
func (s *Store) RetireTeamKey(ctx context.Context, appID int64, id, actor string) (*mds.TeamKey, error) {
	var k *mds.TeamKey
	err := s.transact(ctx, func(tx *sql.Tx) error {
		var err error
		if k, err = s.findTeamKey(ctx, tx, appID, id, s.d.ForUpdate); err != nil {
			return notFound(err, "key %s is not registered with this app", id)
		}
		if !k.Active() {
			return mds.Errorf(mds.ECONFLICT, "key %s was retired on %s already", id, k.RetiredAt.Format(time.RFC3339))
		}
		at := s.now()
		_, err = tx.ExecContext(ctx, s.q(`UPDATE team_keys SET retired_at = ?, retired_by = ? WHERE app_id = ? AND id = ?`),
			millis(at), actor, appID, id)
		k.RetiredAt, k.RetiredBy = &at, actor
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func scanTeamKey(r scanner) (*mds.TeamKey, error) {
	var k mds.TeamKey
	var created int64
	var retiredAt sql.NullInt64
	var retiredBy sql.NullString
	if err := r.Scan(&k.AppID, &k.ID, &k.Alg, &k.PEM, &k.Name, &created, &k.CreatedBy, &retiredAt, &retiredBy); err != nil {
		return nil, err
	}
	k.CreatedAt = fromMillis(created)
	if retiredAt.Valid {
		at := fromMillis(retiredAt.Int64)
		k.RetiredAt, k.RetiredBy = &at, retiredBy.String
	}
	return &k, nil
}

// checkHotpatch refuses hotpatch a unless the key that signed it is the
// app's and active, and its patch version is above every one the app
// ever used for each app version it patches. It locks the app's row
// first, so that two uploads of one app cannot both pass the check with
// the same patch version; the unique constraint on hotpatch_versions is
// the backstop.
func (s *Store) checkHotpatch(ctx context.Context, tx *sql.Tx, a *mds.Artifact) error {
	if err := s.lockApp(ctx, tx, a.AppID); err != nil {
		return err
	}
	return s.hotpatchRefusal(ctx, tx, a)
}

// hotpatchRefusal is why CreateArtifact refuses hotpatch a, read through q.
func (s *Store) hotpatchRefusal(ctx context.Context, q rowQuerier, a *mds.Artifact) error {
	p, err := hotpatchSpec(a)
	if err != nil {
		return err
	}
	if err := s.teamKeyRefusal(ctx, q, a.AppID, p.KeyID, "hotpatch"); err != nil {
		return err
	}
	for _, v := range p.AppVersions() {
		var last sql.NullInt64
		err := q.QueryRowContext(ctx, s.q(`SELECT MAX(patch_version) FROM hotpatch_versions WHERE app_id = ? AND platform = ? AND app_version = ?`),
			a.AppID, a.Platform, v).Scan(&last)
		if err != nil {
			return err
		}
		if last.Valid && p.PatchVersion <= last.Int64 {
			return stalePatch(a, p, v, last.Int64)
		}
	}
	return nil
}

// teamKeyRefusal is why a package (what names it) signed by team key id
// is refused by app appID: a key the app has not registered, or retired.
func (s *Store) teamKeyRefusal(ctx context.Context, q rowQuerier, appID int64, id, what string) error {
	var retired sql.NullInt64
	err := q.QueryRowContext(ctx, s.q(`SELECT retired_at FROM team_keys WHERE app_id = ? AND id = ?`), appID, id).Scan(&retired)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return mds.Errorf(mds.EINVALID, "key %s, which signed the %s, is one this app has not registered; register its public key with `mds keys add` first", id, what)
	case err != nil:
		return err
	case retired.Valid:
		return mds.Errorf(mds.EINVALID, "key %s, which signed the %s, was retired on %s; sign it with an active key of the app",
			id, what, fromMillis(retired.Int64).Format(time.RFC3339))
	}
	return nil
}

// recordHotpatch records the patch version of hotpatch a, stored now, as
// used for each app version it patches.
func (s *Store) recordHotpatch(ctx context.Context, tx *sql.Tx, a *mds.Artifact) error {
	p, err := hotpatchSpec(a)
	if err != nil {
		return err
	}
	for _, v := range p.AppVersions() {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO hotpatch_versions (app_id, platform, app_version, patch_version, artifact_id)
			VALUES (?, ?, ?, ?, ?)`), a.AppID, a.Platform, v, p.PatchVersion, a.ID)
		if err != nil && s.d.IsUnique(err) {
			// Only a writer that skipped the app's lock gets here; the
			// version it took is at least this one.
			return stalePatch(a, p, v, p.PatchVersion)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func hotpatchSpec(a *mds.Artifact) (*mds.HotpatchSpec, error) {
	p, ok := a.Spec.(*mds.HotpatchSpec)
	if !ok {
		return nil, fmt.Errorf("hotpatch artifact with a %T spec", a.Spec)
	}
	return p, nil
}

// stalePatch is the ECONFLICT of a patch version not above last, the
// highest the app used for app version v.
func stalePatch(a *mds.Artifact, p *mds.HotpatchSpec, v string, last int64) error {
	return mds.Errorf(mds.ECONFLICT, "patch version %d is not above %d, the last hotpatch of %s %s; pack it with --patch-version %d",
		p.PatchVersion, last, a.Platform, v, last+1)
}
