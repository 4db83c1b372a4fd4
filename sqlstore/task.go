package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mds-dev/mds"
)

const taskColumns = `id, app_id, kind, artifact_id, policy, status, stage, targeting, created_at, updated_at, created_by`

// The statuses, for SQL, of tasks that are finished (mds.Status.Finished:
// they hold on to nothing and block no delete) and of those a snapshot
// delivers (mds.Status.Delivered).
var (
	finished  = []any{mds.StatusStopped, mds.StatusRolledBack}
	delivered = []any{mds.StatusLive, mds.StatusRolledBack}
)

// CreateTask implements mds.TaskStore.
func (s *Store) CreateTask(ctx context.Context, t *mds.Task, actor string) error {
	t.CreatedAt = s.now()
	t.UpdatedAt = t.CreatedAt
	t.CreatedBy = actor
	policy, targeting, err := encodeTask(t)
	if err != nil {
		return err
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		if err := s.checkRefs(ctx, tx, t); err != nil {
			return err
		}
		if t.Status == mds.StatusLive {
			if err := s.checkRelease(ctx, tx, t); err != nil {
				return err
			}
		}
		err = tx.QueryRowContext(ctx, s.q(`INSERT INTO tasks (app_id, kind, artifact_id, policy, status, stage, targeting,
			created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			t.AppID, t.Kind, nullID(t.ArtifactID), policy, t.Status, t.Stage, targeting,
			millis(t.CreatedAt), millis(t.UpdatedAt), t.CreatedBy).Scan(&t.ID)
		if err != nil {
			return s.refused(err, mds.ENOTFOUND, "package %d was deleted just now", t.ArtifactID)
		}
		if err := s.syncRefs(ctx, tx, t); err != nil {
			return err
		}
		if t.Status == mds.StatusLive {
			if err := s.released(ctx, tx, t); err != nil {
				return err
			}
		}
		// A task released as it is created has the history of one created
		// and then released: the same two events, in one transaction.
		created := *t
		created.Status = mds.StatusDraft
		if err := s.addEvent(ctx, tx, &created, actor, "created"); err != nil {
			return err
		}
		if t.Status == mds.StatusLive {
			if err := s.addEvent(ctx, tx, t, actor, string(mds.ActionRelease)); err != nil {
				return err
			}
		}
		return s.bump(ctx, tx, t.AppID)
	})
}

func encodeTask(t *mds.Task) (policy, targeting string, err error) {
	p, err := json.Marshal(t.Policy)
	if err != nil {
		return "", "", err
	}
	tg, err := json.Marshal(t.Targeting)
	return string(p), string(tg), err
}

// checkRefs makes sure everything t names belongs to t's app, with a
// message naming what is missing. The foreign keys make the same check
// race-free; this one is for the message.
func (s *Store) checkRefs(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	exists := func(query string, args ...any) (bool, error) {
		var n int
		err := tx.QueryRowContext(ctx, s.q(query), args...).Scan(&n)
		return n > 0, err
	}
	if t.ArtifactID != 0 {
		ok, err := exists(`SELECT COUNT(*) FROM artifacts WHERE app_id = ? AND id = ? AND kind = ?`, t.AppID, t.ArtifactID, t.Kind)
		if err != nil {
			return err
		}
		if !ok {
			return mds.Errorf(mds.ENOTFOUND, "%s package %d not found in this app", t.Kind, t.ArtifactID)
		}
	}
	refs := []struct {
		table, what string
		ids         []int64
	}{
		{"rule_sets", "rule set", t.Targeting.RuleSets},
		{"whitelists", "whitelist", t.Targeting.Whitelists},
	}
	for _, r := range refs {
		for _, id := range r.ids {
			ok, err := exists(`SELECT COUNT(*) FROM `+r.table+` WHERE id = ? AND app_id = ?`, id, t.AppID)
			if err != nil {
				return err
			}
			if !ok {
				return mds.Errorf(mds.ENOTFOUND, "%s %d not found in this app", r.what, id)
			}
		}
	}
	return nil
}

// syncRefs records the rule sets and whitelists t uses until it is
// finished; a finished task (stopped or rolled back) holds on to nothing,
// so what it used may go.
func (s *Store) syncRefs(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	for _, table := range []string{"task_rule_sets", "task_whitelists"} {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+table+` WHERE task_id = ?`), t.ID); err != nil {
			return err
		}
	}
	if t.Status.Finished() {
		return nil
	}
	refs := []struct {
		insert, what string
		ids          []int64
	}{
		{`INSERT INTO task_rule_sets (app_id, task_id, rule_set_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, "rule set", t.Targeting.RuleSets},
		{`INSERT INTO task_whitelists (app_id, task_id, whitelist_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, "whitelist", t.Targeting.Whitelists},
	}
	for _, r := range refs {
		for _, id := range r.ids {
			if _, err := tx.ExecContext(ctx, s.q(r.insert), t.AppID, t.ID, id); err != nil {
				return s.refused(err, mds.ENOTFOUND, "%s %d was deleted just now", r.what, id)
			}
		}
	}
	return nil
}

// FindTask implements mds.TaskStore.
func (s *Store) FindTask(ctx context.Context, appID, id int64) (*mds.Task, error) {
	t, err := scanTask(s.read.QueryRowContext(ctx,
		s.q(`SELECT `+taskColumns+` FROM tasks WHERE app_id = ? AND id = ?`), appID, id))
	return t, notFound(err, "task %d not found in this app", id)
}

// ListTasks implements mds.TaskStore.
func (s *Store) ListTasks(ctx context.Context, appID int64, status mds.Status, p mds.Page) ([]*mds.Task, error) {
	query := `SELECT ` + taskColumns + ` FROM tasks WHERE app_id = ?`
	args := []any{appID}
	if status != "" {
		query += ` AND status = ?`
		args = append(args, status)
	}
	page, pageArgs, err := idPage(p, "id", true)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(query+page), append(args, pageArgs...)...)
	return collect(rows, err, scanTask)
}

// UpdateTask implements mds.TaskStore.
func (s *Store) UpdateTask(ctx context.Context, appID, id int64, actor string, change func(*mds.Task) (string, error)) (*mds.Task, error) {
	var t *mds.Task
	err := s.transact(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTask(tx.QueryRowContext(ctx,
			s.q(`SELECT `+taskColumns+` FROM tasks WHERE app_id = ? AND id = ?`+s.d.ForUpdate), appID, id))
		if err != nil {
			return notFound(err, "task %d not found in this app", id)
		}
		was := t.Status
		event, err := change(t)
		if err != nil {
			return err
		}
		if err := s.checkRefs(ctx, tx, t); err != nil {
			return err
		}
		if was != mds.StatusLive && t.Status == mds.StatusLive {
			if err := s.checkRelease(ctx, tx, t); err != nil {
				return err
			}
		}
		policy, targeting, err := encodeTask(t)
		if err != nil {
			return err
		}
		t.UpdatedAt = s.now()
		_, err = tx.ExecContext(ctx, s.q(`UPDATE tasks SET policy = ?, status = ?, stage = ?, targeting = ?, updated_at = ? WHERE id = ?`),
			policy, t.Status, t.Stage, targeting, millis(t.UpdatedAt), t.ID)
		if err != nil {
			return err
		}
		if err := s.syncRefs(ctx, tx, t); err != nil {
			return err
		}
		if was != mds.StatusLive && t.Status == mds.StatusLive {
			if err := s.released(ctx, tx, t); err != nil {
				return err
			}
		}
		if t.Kind == mds.KindConfig && event == string(mds.ActionPromote) && !was.Finished() && t.Status == mds.StatusStopped {
			// Task.Apply stops a gray change without rules as it promotes
			// it: it becomes its namespace's next version.
			if err := s.foldConfig(ctx, tx, t, actor); err != nil {
				return err
			}
		}
		if err := s.addEvent(ctx, tx, t, actor, event); err != nil {
			return err
		}
		return s.bump(ctx, tx, t.AppID)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// DeleteTask implements mds.TaskStore. A draft or stopped task reaches no
// device, so deleting it leaves the revision alone. A rolled-back one is
// kept: it is what tells the devices that applied its patch to roll back.
func (s *Store) DeleteTask(ctx context.Context, appID, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		var status mds.Status
		err := tx.QueryRowContext(ctx, s.q(`SELECT status FROM tasks WHERE app_id = ? AND id = ?`+s.d.ForUpdate), appID, id).Scan(&status)
		if err != nil {
			return notFound(err, "task %d not found in this app", id)
		}
		switch status {
		case mds.StatusDraft, mds.StatusStopped:
		case mds.StatusRolledBack:
			return mds.Errorf(mds.ECONFLICT, "task %d was rolled back: devices that applied its patch are told to roll back while it exists", id)
		default:
			return mds.Errorf(mds.ECONFLICT, "task %d is %s; stop it before deleting it", id, status)
		}
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM tasks WHERE id = ?`), id)
		return err
	})
}

func (s *Store) addEvent(ctx context.Context, tx *sql.Tx, t *mds.Task, actor, action string) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_events (task_id, at, actor, action, status, stage)
		VALUES (?, ?, ?, ?, ?, ?)`), t.ID, millis(t.UpdatedAt), actor, action, t.Status, t.Stage)
	return err
}

// TaskEvents implements mds.TaskStore.
func (s *Store) TaskEvents(ctx context.Context, appID, taskID int64, p mds.Page) ([]*mds.TaskEvent, error) {
	if _, err := s.FindTask(ctx, appID, taskID); err != nil {
		return nil, err
	}
	page, args, err := idPage(p, "id", false)
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT id, task_id, at, actor, action, status, stage
		FROM task_events WHERE task_id = ?`+page), append([]any{taskID}, args...)...)
	return collect(rows, err, func(r scanner) (*mds.TaskEvent, error) {
		var e mds.TaskEvent
		var at int64
		if err := r.Scan(&e.ID, &e.TaskID, &at, &e.Actor, &e.Action, &e.Status, &e.Stage); err != nil {
			return nil, err
		}
		e.At = fromMillis(at)
		return &e, nil
	})
}

func scanTask(r scanner) (*mds.Task, error) {
	var t mds.Task
	var artifact sql.NullInt64
	var created, updated int64
	var policy, targeting string
	err := r.Scan(&t.ID, &t.AppID, &t.Kind, &artifact, &policy, &t.Status, &t.Stage, &targeting, &created, &updated, &t.CreatedBy)
	if err != nil {
		return nil, err
	}
	t.ArtifactID = artifact.Int64
	if t.Policy, err = mds.DecodePolicy(t.Kind, []byte(policy)); err != nil {
		return nil, fmt.Errorf("task %d: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(targeting), &t.Targeting); err != nil {
		return nil, fmt.Errorf("task %d: targeting: %w", t.ID, err)
	}
	t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &t, nil
}

// nullID stores "none" (0) as NULL, for kinds without an artifact.
func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// LoadLive implements mds.LiveStore. It reads in one transaction so that the
// revision, the record of what changed, and the rows agree.
func (s *Store) LoadLive(ctx context.Context, since int64, again ...int64) (*mds.LiveSet, error) {
	tx, err := s.read.BeginTx(ctx, s.d.ReadTx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	set := &mds.LiveSet{}
	if err := tx.QueryRowContext(ctx, `SELECT revision FROM meta WHERE id = 1`).Scan(&set.Revision); err != nil {
		return nil, err
	}
	switch {
	case since >= set.Revision && len(again) == 0:
		return set, nil // nothing new
	case since >= set.Revision:
		set.Changed = []int64{}
	default:
		if set.Changed, err = s.changedSince(ctx, tx, since, set.Revision); err != nil {
			return nil, err
		}
	}
	for _, id := range again {
		if set.Changed != nil && !slices.Contains(set.Changed, id) {
			set.Changed = append(set.Changed, id)
		}
	}
	if len(set.Changed) > maxChanged {
		set.Changed = nil
	}
	set.Full = set.Changed == nil
	if len(set.Changed) == 0 && !set.Full {
		return set, nil
	}
	// Everything: rule sets and whitelists are few and small without their
	// entries, so read those of every app with a delivered task rather
	// than parse references. The apps that changed: by app first, which
	// the indexes serve, and every rule set and whitelist of those apps.
	// tasks_status (status, app_id) serves both: one range per status.
	status := `status IN (` + marks(len(delivered)) + `)`
	apps, tasks := where{}, where{status, delivered}
	artifacts := where{`id IN (SELECT artifact_id FROM tasks WHERE ` + status + `)`, delivered}
	configs := where{`1 = 1`, nil} // of every app: namespaces need no task to reach devices
	lists := where{`app_id IN (SELECT app_id FROM tasks WHERE ` + status + `)`, delivered}
	if !set.Full {
		in := `IN (` + marks(len(set.Changed)) + `)`
		ids := make([]any, len(set.Changed))
		for i, id := range set.Changed {
			ids[i] = id
		}
		byApp := `app_id ` + in
		apps = where{`id ` + in, ids}
		tasks = where{byApp + ` AND ` + status, slices.Concat(ids, delivered)}
		artifacts = where{byApp + ` AND id IN (SELECT artifact_id FROM tasks WHERE ` + byApp + ` AND ` + status + `)`,
			slices.Concat(ids, ids, delivered)}
		lists = where{byApp, ids}
		configs = where{`v.` + byApp, ids}
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT `+appColumns+` FROM apps`+apps.sql()+` ORDER BY slug`), apps.args...)
	if set.Apps, err = collect(rows, err, scanApp); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+taskColumns+` FROM tasks`+tasks.sql()), tasks.args...)
	if set.Tasks, err = collect(rows, err, scanTask); err != nil {
		return nil, err
	}
	if set.Artifacts, err = s.artifacts(ctx, tx, artifacts.sql(), artifacts.args...); err != nil {
		return nil, err
	}
	if set.Deltas, err = s.deltasTo(ctx, tx, set.Artifacts); err != nil {
		return nil, err
	}
	if set.Config, err = s.currentConfig(ctx, tx, configs.cond, configs.args, true); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+ruleSetColumns+` FROM rule_sets`+lists.sql()), lists.args...)
	if set.RuleSets, err = collect(rows, err, scanRuleSet); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+whitelistColumns+` FROM whitelists`+lists.sql()), lists.args...)
	if set.Whitelists, err = collect(rows, err, scanWhitelist); err != nil {
		return nil, err
	}
	return set, nil
}

// where is a WHERE condition ("" for none) and its arguments.
type where struct {
	cond string
	args []any
}

func (w where) sql() string {
	if w.cond == "" {
		return ""
	}
	return ` WHERE ` + w.cond
}

// maxChanged is the most apps a partial load reads; past it, reading
// everything is as cheap and keeps the statements small.
const maxChanged = 100

// changedSince returns the distinct apps changed after revision since, up
// to revision rev, or nil when since is 0, when more than maxChanged apps
// changed (then the caller reads everything), or when the change log does
// not hold every revision in between: it keeps the last changeLog, and a
// node of an older version, during a rolling upgrade, moves the revision
// without logging it.
func (s *Store) changedSince(ctx context.Context, tx *sql.Tx, since, rev int64) ([]int64, error) {
	if since <= 0 {
		return nil, nil
	}
	var logged int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM app_changes WHERE revision > ? AND revision <= ?`), since, rev).Scan(&logged); err != nil {
		return nil, err
	}
	if logged != rev-since {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT DISTINCT app_id FROM app_changes WHERE revision > ? AND revision <= ? LIMIT ?`), since, rev, maxChanged+1)
	apps, err := collect(rows, err, func(r scanner) (int64, error) {
		var id int64
		err := r.Scan(&id)
		return id, err
	})
	if err != nil || len(apps) > maxChanged {
		return nil, err
	}
	return apps, nil // not empty: the log holds rev-since > 0 rows
}

// released records what task t going live means for its kind: an offline
// package's version is released, and deltas to it are queued.
func (s *Store) released(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	if t.Kind == mds.KindOffline {
		return s.releaseOffline(ctx, tx, t)
	}
	return nil
}

// checkRelease refuses to make task t live when the app has as many
// configuration changes live as it may (for a config task), or when what
// it delivers may no longer go out: a hotpatch a rolled-back task withdrew (withdrawn for
// good: a fix is a new patch version), or one signed by a key the app has
// retired since it was uploaded. Tasks already live keep running: a
// retired key is the normal end of a rotation, and devices check the
// keys their build trusts.
func (s *Store) checkRelease(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	if t.Kind == mds.KindConfig {
		return s.checkConfigRelease(ctx, tx, t)
	}
	if t.Kind != mds.KindHotpatch {
		return nil
	}
	var by int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM tasks WHERE app_id = ? AND artifact_id = ? AND status = ? LIMIT 1`),
		t.AppID, t.ArtifactID, mds.StatusRolledBack).Scan(&by)
	switch {
	case err == nil:
		return mds.Errorf(mds.ECONFLICT, "package %d was rolled back by task %d and is withdrawn for good; pack the fix as a new patch version", t.ArtifactID, by)
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	as, err := s.artifacts(ctx, tx, `WHERE app_id = ? AND id = ?`, t.AppID, t.ArtifactID)
	if err != nil || len(as) == 0 {
		return err // checkRefs said it exists; the foreign key keeps it
	}
	p, ok := as[0].Spec.(*mds.HotpatchSpec)
	if !ok {
		return nil
	}
	var retired sql.NullInt64
	err = tx.QueryRowContext(ctx, s.q(`SELECT retired_at FROM team_keys WHERE app_id = ? AND id = ?`), t.AppID, p.KeyID).Scan(&retired)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if retired.Valid {
		return mds.Errorf(mds.ECONFLICT, "package %d is signed by key %s, retired on %s: it is not released again; sign the patch with a current key",
			t.ArtifactID, p.KeyID, fromMillis(retired.Int64).Format(time.DateOnly))
	}
	return nil
}
