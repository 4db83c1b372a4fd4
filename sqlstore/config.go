package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mds-dev/mds"
)

// What the store keeps of remote configuration: every version of every
// namespace (config_versions). The newest version of a namespace is its
// current one; a gray change is an artifact of kind config, delivered by a
// task like any other, and promoting one without rules makes it a version
// (foldConfig).

const configColumns = `id, app_id, namespace, number, keys, key_count, size, message, restores, promotes, created_at, created_by`

// EditConfig implements mds.ConfigStore.
func (s *Store) EditConfig(ctx context.Context, appID int64, actor, message string, edits []mds.ConfigEdit) ([]*mds.ConfigVersion, error) {
	seen := map[string]bool{}
	for i := range edits {
		if err := edits[i].Validate(); err != nil {
			return nil, err
		}
		if seen[edits[i].Namespace] {
			return nil, mds.Errorf(mds.EINVALID, "namespace %s is edited twice in one write; give each namespace once", edits[i].Namespace)
		}
		seen[edits[i].Namespace] = true
	}
	var out []*mds.ConfigVersion
	err := s.transact(ctx, func(tx *sql.Tx) error {
		out = nil
		if err := s.lockApp(ctx, tx, appID); err != nil {
			return err
		}
		for _, e := range edits {
			v, err := s.editConfig(ctx, tx, appID, actor, message, e, 0)
			if err != nil {
				return err
			}
			if v != nil {
				out = append(out, v)
			}
		}
		if len(out) == 0 {
			return nil
		}
		if err := s.configBounds(ctx, tx, appID); err != nil {
			return err
		}
		return s.bump(ctx, tx, appID)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// editConfig makes the version edit e leads to, in tx, which holds the
// app's lock; nil when e changes nothing. promotes is the task whose gray
// change e takes in, 0 for none.
func (s *Store) editConfig(ctx context.Context, tx *sql.Tx, appID int64, actor, message string, e mds.ConfigEdit, promotes int64) (*mds.ConfigVersion, error) {
	cur, err := s.findConfigVersion(ctx, tx, appID, e.Namespace, 0)
	switch {
	case mds.ErrorCode(err) == mds.ENOTFOUND:
		cur = &mds.ConfigVersion{Keys: mds.ConfigKeys{}}
	case err != nil:
		return nil, err
	}
	if e.Base != nil && *e.Base != cur.Number {
		if cur.Number == 0 {
			return nil, mds.Errorf(mds.ECONFLICT, "namespace %s has no version %d: it has no versions yet", e.Namespace, *e.Base)
		}
		return nil, mds.Errorf(mds.ECONFLICT, "namespace %s is at version %d (by %s), not %d: review what changed (mds config diff) and apply again",
			e.Namespace, cur.Number, cur.CreatedBy, *e.Base)
	}
	next := &mds.ConfigVersion{AppID: appID, Namespace: e.Namespace, Number: cur.Number + 1, Message: message,
		Promotes: promotes, CreatedAt: s.now(), CreatedBy: actor}
	if e.Restore > 0 {
		old, err := s.findConfigVersion(ctx, tx, appID, e.Namespace, e.Restore)
		if err != nil {
			return nil, err
		}
		if e.Restore == cur.Number {
			return nil, mds.Errorf(mds.ECONFLICT, "namespace %s is at version %d already; roll back to an earlier one", e.Namespace, cur.Number)
		}
		next.Keys, next.Restores = old.Keys, e.Restore
	} else {
		next.Keys = e.Apply(cur.Keys)
		if next.Keys.Equal(cur.Keys) {
			return nil, nil
		}
	}
	next.KeyCount, next.Size = len(next.Keys), next.Keys.Size()
	keys, err := encodeJSON(next.Keys)
	if err != nil {
		return nil, err
	}
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO config_versions (app_id, namespace, number, keys, key_count, size, message, restores, promotes, created_at, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		appID, next.Namespace, next.Number, string(keys), next.KeyCount, next.Size, next.Message, nullID(next.Restores), nullID(next.Promotes),
		millis(next.CreatedAt), actor).Scan(&next.ID)
	if err != nil {
		// Only a writer that skipped the app's lock could race us here.
		return nil, s.conflict(err, "namespace %s moved on while this change was written; apply it again", e.Namespace)
	}
	return next, nil
}

// configBounds refuses the app's current versions if they hold more keys,
// keys in more namespaces, or more bytes than an app may: every device's
// configuration names each namespace, and a node keeps them in memory.
func (s *Store) configBounds(ctx context.Context, tx *sql.Tx, appID int64) error {
	var keys, namespaces, size int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(SUM(v.key_count), 0), COUNT(*), COALESCE(SUM(v.size), 0) FROM config_versions v
		WHERE v.app_id = ? AND v.key_count > 0
		AND v.number = (SELECT MAX(number) FROM config_versions c WHERE c.app_id = v.app_id AND c.namespace = v.namespace)`), appID).Scan(&keys, &namespaces, &size)
	switch {
	case err != nil:
		return err
	case size > mds.MaxConfigBytes:
		return mds.Errorf(mds.EINVALID, "the app's configuration would be %d bytes of names, values and schemas; an app holds at most %d, in all its namespaces together", size, mds.MaxConfigBytes)
	case keys > mds.MaxConfigKeys:
		return mds.Errorf(mds.EINVALID, "the app would hold %d configuration keys; an app holds at most %d, in all its namespaces together", keys, mds.MaxConfigKeys)
	case namespaces > mds.MaxConfigNamespaces:
		return mds.Errorf(mds.EINVALID, "the app would hold keys in %d namespaces; an app holds at most %d (empty one to free it)", namespaces, mds.MaxConfigNamespaces)
	}
	return nil
}

// foldConfig makes config task t's change the next version of its
// namespace, in t's promotion: a change for every device is a version,
// so that history holds what everyone got.
func (s *Store) foldConfig(ctx context.Context, tx *sql.Tx, t *mds.Task, actor string) error {
	as, err := s.artifacts(ctx, tx, `WHERE app_id = ? AND id = ?`, t.AppID, t.ArtifactID)
	if err != nil {
		return err
	}
	if len(as) == 0 {
		return mds.Errorf(mds.ENOTFOUND, "package %d not found in this app", t.ArtifactID)
	}
	p, ok := as[0].Spec.(*mds.ConfigSpec)
	if !ok {
		return fmt.Errorf("task %d: package %d is not a configuration change", t.ID, t.ArtifactID)
	}
	if err := s.lockApp(ctx, tx, t.AppID); err != nil {
		return err
	}
	if err := s.foldable(ctx, tx, t, p); err != nil {
		return err
	}
	msg := "promote task " + strconv.FormatInt(t.ID, 10)
	if p.Message != "" {
		msg += ": " + p.Message
	}
	e := mds.ConfigEdit{Namespace: p.Namespace, Set: p.Set, Delete: p.Delete}
	if _, err := s.editConfig(ctx, tx, t.AppID, actor, msg, e, t.ID); err != nil {
		return err
	}
	return s.configBounds(ctx, tx, t.AppID)
}

// foldable refuses to make change p of task t its namespace's next
// version when that would not give every device what it promises: an
// older live change of the namespace sets or deletes one of its keys (its
// audience would keep the older value over the new version), or a key it
// sets has since changed type or schema in the current version (the fold
// would undo that change, with a value nobody checked against it).
func (s *Store) foldable(ctx context.Context, tx *sql.Tx, t *mds.Task, p *mds.ConfigSpec) error {
	cur, err := s.findConfigVersion(ctx, tx, t.AppID, p.Namespace, 0)
	if err != nil && mds.ErrorCode(err) != mds.ENOTFOUND {
		return err
	}
	if cur != nil {
		for name, k := range p.Set {
			if old, ok := cur.Keys[name]; ok && (old.Type != k.Type || !bytes.Equal(old.Schema, k.Schema)) {
				return mds.Errorf(mds.ECONFLICT, "%s.%s is a %s key with another schema, or of another type, in version %d than in task %d's change: "+
					"stop the task and make the change again over the current key", p.Namespace, name, old.Type, cur.Number, t.ID)
			}
		}
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, artifact_id FROM tasks WHERE app_id = ? AND kind = ? AND status = ? AND id < ? ORDER BY id`),
		t.AppID, mds.KindConfig, mds.StatusLive, t.ID)
	older, err := collect(rows, err, func(r scanner) ([2]int64, error) {
		var ids [2]int64
		return ids, r.Scan(&ids[0], &ids[1])
	})
	if err != nil {
		return err
	}
	for _, ids := range older {
		as, err := s.artifacts(ctx, tx, `WHERE app_id = ? AND id = ?`, t.AppID, ids[1])
		if err != nil {
			return err
		}
		o, ok := as[0].Spec.(*mds.ConfigSpec)
		if !ok || o.Namespace != p.Namespace {
			continue
		}
		for _, name := range touched(o) {
			if _, set := p.Set[name]; set || slices.Contains(p.Delete, name) {
				return mds.Errorf(mds.ECONFLICT, "task %d, live and older, also changes %s.%s, and would keep its value for its audience over the promoted version: "+
					"promote or stop it first", ids[0], p.Namespace, name)
			}
		}
	}
	return nil
}

// touched lists the keys change p sets or deletes.
func touched(p *mds.ConfigSpec) []string {
	return append(slices.Collect(maps.Keys(p.Set)), p.Delete...)
}

// checkConfigRelease refuses to make config task t live when the app
// already has MaxLiveConfigChanges live: the set of those admitting a
// device is what its configuration is kept by. It holds the app's lock,
// so that racing releases count each other.
func (s *Store) checkConfigRelease(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	if err := s.lockApp(ctx, tx, t.AppID); err != nil {
		return err
	}
	var live int
	err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM tasks WHERE app_id = ? AND kind = ? AND status = ? AND id <> ?`),
		t.AppID, mds.KindConfig, mds.StatusLive, t.ID).Scan(&live)
	if err != nil {
		return err
	}
	if live >= mds.MaxLiveConfigChanges {
		return mds.Errorf(mds.ECONFLICT, "the app has %d configuration changes live, the most it may; promote or stop one first", live)
	}
	return s.liveConfigBounds(ctx, tx, t)
}

// liveConfigBounds refuses to make config task t live when a device could
// then see more keys, or keys in more namespaces, than an app may hold
// (the app's current keys and those its live changes add), or when its
// live changes would set more than MaxConfigBytes together.
func (s *Store) liveConfigBounds(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	current, err := s.currentConfig(ctx, tx, `v.app_id = ?`, []any{t.AppID}, true)
	if err != nil {
		return err
	}
	keys, namespaces := map[[2]string]bool{}, map[string]bool{}
	for _, v := range current {
		namespaces[v.Namespace] = true
		for name := range v.Keys {
			keys[[2]string{v.Namespace, name}] = true
		}
	}
	changes, err := s.artifacts(ctx, tx, `WHERE app_id = ? AND kind = ? AND (id = ? OR id IN (SELECT artifact_id FROM tasks WHERE app_id = ? AND kind = ? AND status = ? AND id <> ?))`,
		t.AppID, mds.KindConfig, t.ArtifactID, t.AppID, mds.KindConfig, mds.StatusLive, t.ID)
	if err != nil {
		return err
	}
	size := 0
	for _, a := range changes {
		p, ok := a.Spec.(*mds.ConfigSpec)
		if !ok {
			continue
		}
		namespaces[p.Namespace] = true
		for name := range p.Set {
			keys[[2]string{p.Namespace, name}] = true
		}
		size += p.Set.Size()
	}
	switch {
	case len(keys) > mds.MaxConfigKeys:
		return mds.Errorf(mds.EINVALID, "with this change live, devices could see %d configuration keys; an app holds at most %d: promote or stop a change first", len(keys), mds.MaxConfigKeys)
	case len(namespaces) > mds.MaxConfigNamespaces:
		return mds.Errorf(mds.EINVALID, "with this change live, devices could see keys in %d namespaces; an app holds at most %d", len(namespaces), mds.MaxConfigNamespaces)
	case size > mds.MaxConfigBytes:
		return mds.Errorf(mds.EINVALID, "with this change live, the app's live changes would set %d bytes of names, values and schemas; at most %d together", size, mds.MaxConfigBytes)
	}
	return nil
}

// FindConfigVersion implements mds.ConfigStore.
func (s *Store) FindConfigVersion(ctx context.Context, appID int64, ns string, number int64) (*mds.ConfigVersion, error) {
	return s.findConfigVersion(ctx, s.read, appID, ns, number)
}

func (s *Store) findConfigVersion(ctx context.Context, q querier, appID int64, ns string, number int64) (*mds.ConfigVersion, error) {
	where, args := `WHERE app_id = ? AND namespace = ? AND number = ?`, []any{appID, ns, number}
	if number == 0 {
		where, args = `WHERE app_id = ? AND namespace = ? ORDER BY number DESC LIMIT 1`, args[:2]
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT `+configColumns+` FROM config_versions `+where), args...)
	list, err := collect(rows, err, scanConfigVersion)
	switch {
	case err != nil:
		return nil, err
	case len(list) > 0:
		return list[0], nil
	case number == 0:
		return nil, mds.Errorf(mds.ENOTFOUND, "namespace %s has no versions in this app", ns)
	}
	return nil, mds.Errorf(mds.ENOTFOUND, "namespace %s has no version %d in this app", ns, number)
}

// ListConfigVersions implements mds.ConfigStore.
func (s *Store) ListConfigVersions(ctx context.Context, appID int64, ns string, p mds.Page) ([]*mds.ConfigVersion, error) {
	page, args, err := idPage(p, "number", true)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+configColumns+` FROM config_versions WHERE app_id = ? AND namespace = ?`+page),
		append([]any{appID, ns}, args...)...)
	list, err := collect(rows, err, scanConfigVersion)
	for _, v := range list {
		v.Keys = nil
	}
	return list, err
}

// CurrentConfig implements mds.ConfigStore.
func (s *Store) CurrentConfig(ctx context.Context, appID int64) ([]*mds.ConfigVersion, error) {
	return s.currentConfig(ctx, s.read, `v.app_id = ?`, []any{appID}, false)
}

// currentConfig reads the current versions of the namespaces of the apps
// cond selects, by app and namespace; with keyed, only those that hold
// a key.
func (s *Store) currentConfig(ctx context.Context, q querier, cond string, args []any, keyed bool) ([]*mds.ConfigVersion, error) {
	if keyed {
		cond += ` AND v.key_count > 0`
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT `+prefixed("v.", configColumns)+` FROM config_versions v WHERE `+cond+`
		AND v.number = (SELECT MAX(number) FROM config_versions c WHERE c.app_id = v.app_id AND c.namespace = v.namespace)
		ORDER BY v.app_id, v.namespace`), args...)
	return collect(rows, err, scanConfigVersion)
}

func scanConfigVersion(r scanner) (*mds.ConfigVersion, error) {
	var v mds.ConfigVersion
	var keys string
	var restores, promotes sql.NullInt64
	var created int64
	err := r.Scan(&v.ID, &v.AppID, &v.Namespace, &v.Number, &keys, &v.KeyCount, &v.Size, &v.Message, &restores, &promotes, &created, &v.CreatedBy)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(keys), &v.Keys); err != nil {
		return nil, fmt.Errorf("config version %d: %w", v.ID, err)
	}
	if v.Keys == nil {
		v.Keys = mds.ConfigKeys{}
	}
	v.Restores, v.Promotes, v.CreatedAt = restores.Int64, promotes.Int64, fromMillis(created)
	return &v, nil
}

// encodeJSON is v as stored JSON: without HTML escaping, which
// encoding/json applies even inside a RawMessage, so that configuration
// values stay in their canonical bytes (mds.CheckConfigValue).
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// prefixed is columns, a comma-separated list, each named with prefix.
func prefixed(prefix, columns string) string {
	return prefix + strings.ReplaceAll(columns, ", ", ", "+prefix)
}
