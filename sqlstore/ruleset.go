package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/mds-dev/mds"
)

const ruleSetColumns = `id, app_id, name, rules, created_at, updated_at`

// CreateRuleSet implements mds.RuleSetStore.
func (s *Store) CreateRuleSet(ctx context.Context, rs *mds.RuleSet) error {
	rs.CreatedAt = s.now()
	rs.UpdatedAt = rs.CreatedAt
	rules, err := json.Marshal(rs.Rules)
	if err != nil {
		return err
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.q(`INSERT INTO rule_sets (app_id, name, rules, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`), rs.AppID, rs.Name, string(rules), millis(rs.CreatedAt), millis(rs.UpdatedAt)).Scan(&rs.ID)
		return s.conflict(err, "a rule set named %q already exists in this app", rs.Name)
	})
}

// FindRuleSet implements mds.RuleSetStore.
func (s *Store) FindRuleSet(ctx context.Context, appID, id int64) (*mds.RuleSet, error) {
	rs, err := scanRuleSet(s.read.QueryRowContext(ctx, s.q(`SELECT `+ruleSetColumns+` FROM rule_sets WHERE app_id = ? AND id = ?`), appID, id))
	return rs, notFound(err, "rule set %d not found in this app", id)
}

// ListRuleSets implements mds.RuleSetStore.
func (s *Store) ListRuleSets(ctx context.Context, appID int64, p mds.Page) ([]*mds.RuleSet, error) {
	page, args, err := namePage(p, "name")
	if err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT `+ruleSetColumns+` FROM rule_sets WHERE app_id = ?`+page), append([]any{appID}, args...)...)
	return collect(rows, err, scanRuleSet)
}

// UpdateRuleSet implements mds.RuleSetStore.
func (s *Store) UpdateRuleSet(ctx context.Context, rs *mds.RuleSet) error {
	rs.UpdatedAt = s.now()
	rules, err := json.Marshal(rs.Rules)
	if err != nil {
		return err
	}
	return s.transact(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE rule_sets SET name = ?, rules = ?, updated_at = ? WHERE app_id = ? AND id = ?`),
			rs.Name, string(rules), millis(rs.UpdatedAt), rs.AppID, rs.ID)
		if err := rowsAffected(res, s.conflict(err, "a rule set named %q already exists in this app", rs.Name), "rule set %d not found in this app", rs.ID); err != nil {
			return err
		}
		return s.bump(ctx, tx, rs.AppID)
	})
}

// DeleteRuleSet implements mds.RuleSetStore.
func (s *Store) DeleteRuleSet(ctx context.Context, appID, id int64) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		// The app's first: whether another app's rule set is used, and by
		// what, is none of this caller's business.
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM rule_sets WHERE app_id = ? AND id = ?`), appID, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return mds.Errorf(mds.ENOTFOUND, "rule set %d not found in this app", id)
		}
		if err := s.refusedIfUsed(ctx, tx, "task_rule_sets", "rule_set_id", "rule set", id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM rule_sets WHERE app_id = ? AND id = ?`), appID, id)
		err = s.refused(err, mds.ECONFLICT, "rule set %d was taken into use by a task just now; change its targeting or stop it first", id)
		return rowsAffected(res, err, "rule set %d not found in this app", id)
	})
}

// refusedIfUsed fails with ECONFLICT, naming the task, when a task that is
// not finished uses object id (a rule set or whitelist) through the join
// table. The foreign key refuses the delete anyway, also when the use
// begins concurrently; this says which task.
func (s *Store) refusedIfUsed(ctx context.Context, tx *sql.Tx, table, column, what string, id int64) error {
	var task int64
	var status mds.Status
	err := tx.QueryRowContext(ctx, s.q(`SELECT t.id, t.status FROM `+table+` r JOIN tasks t ON t.id = r.task_id
		WHERE r.`+column+` = ? ORDER BY t.id LIMIT 1`), id).Scan(&task, &status)
	switch {
	case err == sql.ErrNoRows:
		return nil
	case err != nil:
		return err
	}
	return mds.Errorf(mds.ECONFLICT, "task %d (%s) uses %s %d; change its targeting or stop it first", task, status, what, id)
}

func scanRuleSet(r scanner) (*mds.RuleSet, error) {
	var rs mds.RuleSet
	var rules string
	var created, updated int64
	if err := r.Scan(&rs.ID, &rs.AppID, &rs.Name, &rules, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rules), &rs.Rules); err != nil {
		return nil, fmt.Errorf("rule set %d: %w", rs.ID, err)
	}
	rs.CreatedAt, rs.UpdatedAt = fromMillis(created), fromMillis(updated)
	return &rs, nil
}
