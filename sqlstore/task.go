package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mds-dev/mds"
)

const taskColumns = `id, app_id, package_id, kind, mode, remind_interval_ms, status, stage, targeting, created_at, updated_at, created_by`

// CreateTask implements mds.TaskStore.
func (s *Store) CreateTask(ctx context.Context, t *mds.Task, actor string) error {
	t.CreatedAt = s.now()
	t.UpdatedAt = t.CreatedAt
	t.CreatedBy = actor
	targeting, err := json.Marshal(t.Targeting)
	if err != nil {
		return err
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		if err := s.checkRefs(ctx, tx, t); err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, s.q(`INSERT INTO tasks (app_id, package_id, kind, mode,
			remind_interval_ms, status, stage, targeting, created_at, updated_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			t.AppID, t.PackageID, t.Kind, t.Mode, t.RemindInterval.Milliseconds(), t.Status, t.Stage, string(targeting),
			millis(t.CreatedAt), millis(t.UpdatedAt), t.CreatedBy).Scan(&t.ID)
		if err != nil {
			return err
		}
		if err := s.addEvent(ctx, tx, t, actor, "created"); err != nil {
			return err
		}
		return s.bump(ctx, tx)
	})
}

// checkRefs makes sure everything t names belongs to t's app. Done inside
// the writing transaction, it keeps a task from ever pointing across apps.
func (s *Store) checkRefs(ctx context.Context, tx *sql.Tx, t *mds.Task) error {
	exists := func(table string, id int64) (bool, error) {
		var n int
		err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM `+table+` WHERE id = ? AND app_id = ?`), id, t.AppID).Scan(&n)
		return n > 0, err
	}
	refs := []struct {
		table, what string
		ids         []int64
	}{
		{"packages", "package", []int64{t.PackageID}},
		{"rule_sets", "rule set", t.Targeting.RuleSets},
		{"whitelists", "whitelist", t.Targeting.Whitelists},
	}
	for _, r := range refs {
		for _, id := range r.ids {
			ok, err := exists(r.table, id)
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

// FindTask implements mds.TaskStore.
func (s *Store) FindTask(ctx context.Context, appID, id int64) (*mds.Task, error) {
	t, err := scanTask(s.read.QueryRowContext(ctx,
		s.q(`SELECT `+taskColumns+` FROM tasks WHERE app_id = ? AND id = ?`), appID, id))
	return t, notFound(err, "task %d not found in this app", id)
}

// ListTasks implements mds.TaskStore.
func (s *Store) ListTasks(ctx context.Context, appID int64, status mds.Status) ([]*mds.Task, error) {
	query := `SELECT ` + taskColumns + ` FROM tasks WHERE app_id = ?`
	args := []any{appID}
	if status != "" {
		query += ` AND status = ?`
		args = append(args, status)
	}
	rows, err := s.read.QueryContext(ctx, s.q(query+` ORDER BY id DESC`), args...)
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
		event, err := change(t)
		if err != nil {
			return err
		}
		if err := s.checkRefs(ctx, tx, t); err != nil {
			return err
		}
		targeting, err := json.Marshal(t.Targeting)
		if err != nil {
			return err
		}
		t.UpdatedAt = s.now()
		_, err = tx.ExecContext(ctx, s.q(`UPDATE tasks SET mode = ?, remind_interval_ms = ?, status = ?, stage = ?,
			targeting = ?, updated_at = ? WHERE id = ?`),
			t.Mode, t.RemindInterval.Milliseconds(), t.Status, t.Stage, string(targeting), millis(t.UpdatedAt), t.ID)
		if err != nil {
			return err
		}
		if err := s.addEvent(ctx, tx, t, actor, event); err != nil {
			return err
		}
		return s.bump(ctx, tx)
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Store) addEvent(ctx context.Context, tx *sql.Tx, t *mds.Task, actor, action string) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_events (task_id, at, actor, action, status, stage)
		VALUES (?, ?, ?, ?, ?, ?)`), t.ID, millis(t.UpdatedAt), actor, action, t.Status, t.Stage)
	return err
}

// TaskEvents implements mds.TaskStore.
func (s *Store) TaskEvents(ctx context.Context, appID, taskID int64) ([]*mds.TaskEvent, error) {
	if _, err := s.FindTask(ctx, appID, taskID); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT id, task_id, at, actor, action, status, stage
		FROM task_events WHERE task_id = ? ORDER BY id`), taskID)
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
	var interval, created, updated int64
	var targeting string
	err := r.Scan(&t.ID, &t.AppID, &t.PackageID, &t.Kind, &t.Mode, &interval, &t.Status, &t.Stage, &targeting,
		&created, &updated, &t.CreatedBy)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(targeting), &t.Targeting); err != nil {
		return nil, fmt.Errorf("task %d: targeting: %w", t.ID, err)
	}
	t.RemindInterval = time.Duration(interval) * time.Millisecond
	t.CreatedAt, t.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &t, nil
}

// LoadLive implements mds.LiveStore. It reads in one transaction so that the
// revision and the rows agree.
func (s *Store) LoadLive(ctx context.Context) (*mds.LiveSet, error) {
	tx, err := s.read.BeginTx(ctx, s.d.ReadTx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	set := &mds.LiveSet{}
	if err := tx.QueryRowContext(ctx, `SELECT revision FROM meta WHERE id = 1`).Scan(&set.Revision); err != nil {
		return nil, err
	}
	if set.Apps, err = s.listApps(ctx, tx); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT `+taskColumns+` FROM tasks WHERE status = ?`), mds.StatusLive)
	if set.Tasks, err = collect(rows, err, scanTask); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+packageColumns+` FROM packages
		WHERE id IN (SELECT package_id FROM tasks WHERE status = ?)`), mds.StatusLive)
	if set.Packages, err = collect(rows, err, scanPackage); err != nil {
		return nil, err
	}
	// Rule sets and whitelists are few and small without their entries:
	// read those of every app with a live task rather than parse references.
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+ruleSetColumns+` FROM rule_sets
		WHERE app_id IN (SELECT app_id FROM tasks WHERE status = ?)`), mds.StatusLive)
	if set.RuleSets, err = collect(rows, err, scanRuleSet); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, s.q(`SELECT `+whitelistColumns+` FROM whitelists
		WHERE app_id IN (SELECT app_id FROM tasks WHERE status = ?)`), mds.StatusLive)
	if set.Whitelists, err = collect(rows, err, scanWhitelist); err != nil {
		return nil, err
	}
	return set, nil
}
