package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Admit implements mds.AdmissionStore. In one transaction: record the
// device (nothing to do if it is already there), then take a place by
// incrementing the task's counter only while it is below the limit. The
// conditional increment locks the task row, so racing admissions on any
// number of nodes serialise on it and the count never passes the limit.
func (s *Store) Admit(ctx context.Context, taskID int64, device string, limit int, at time.Time) (bool, error) {
	admitted := false
	err := s.transact(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_admissions (task_id, device, at) VALUES (?, ?, ?)
			ON CONFLICT (task_id, device) DO NOTHING`), taskID, device, millis(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			admitted = err == nil // admitted before
			return err
		}
		res, err = tx.ExecContext(ctx, s.q(`UPDATE tasks SET admitted = admitted + 1 WHERE id = ? AND admitted < ?`), taskID, limit)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errFull // roll the insert back
		}
		admitted = true
		return nil
	})
	if err == errFull {
		return false, nil
	}
	return admitted, err
}

// errFull rolls back an admission that found no place left.
var errFull = errors.New("window is full")

// Admitted implements mds.AdmissionStore.
func (s *Store) Admitted(ctx context.Context, taskID int64) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT device FROM task_admissions WHERE task_id = ? ORDER BY device`), taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// AdmissionStatus implements mds.AdmissionStore.
func (s *Store) AdmissionStatus(ctx context.Context, taskID int64, device string) (bool, int, error) {
	var count, mine int
	err := s.read.QueryRowContext(ctx, s.q(`SELECT t.admitted,
		(SELECT COUNT(*) FROM task_admissions a WHERE a.task_id = t.id AND a.device = ?)
		FROM tasks t WHERE t.id = ?`), device, taskID).Scan(&count, &mine)
	if err != nil {
		return false, 0, notFound(err, "task %d not found", taskID)
	}
	return mine > 0, count, nil
}
