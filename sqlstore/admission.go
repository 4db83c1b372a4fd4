package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mds-dev/mds"
)

// Admit implements mds.AdmissionStore. One transaction for the batch: lock
// the task's window row (creating it), read the window the task has now,
// learn which of the devices are in already, then admit the others in
// order while places are left and the window is not sealed, and store the
// new count. Racing batches on any number of nodes serialise on the row, so
// the count never passes the cap; and the cap and end are the store's, so a
// node that has not yet heard of an edit cannot admit past it.
func (s *Store) Admit(ctx context.Context, r mds.Admission) ([]bool, error) {
	out := make([]bool, len(r.Devices))
	if len(r.Devices) == 0 {
		return out, nil
	}
	err := s.transact(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_windows (task_id, admitted) VALUES (?, 0) ON CONFLICT (task_id) DO NOTHING`), r.TaskID)
		if err != nil {
			return s.refused(err, mds.ENOTFOUND, "task %d not found", r.TaskID)
		}
		var count int
		var sealed sql.NullInt64
		err = tx.QueryRowContext(ctx, s.q(`SELECT admitted, sealed_until FROM task_windows WHERE task_id = ?`+s.d.ForUpdate), r.TaskID).Scan(&count, &sealed)
		if err != nil {
			return err
		}
		var targeting string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT targeting FROM tasks WHERE id = ?`), r.TaskID).Scan(&targeting); err != nil {
			return notFound(err, "task %d not found", r.TaskID)
		}
		var tg mds.Targeting
		if err := json.Unmarshal([]byte(targeting), &tg); err != nil {
			return fmt.Errorf("task %d: targeting: %w", r.TaskID, err)
		}
		// A task without a window (any more) admits no one new; who got in
		// before stays in.
		limit, end := 0, time.Time{}
		if w := tg.Window; w != nil {
			limit, end = w.Cap, w.End
		}
		in := map[string]bool{}
		for chunk := range chunks(r.Devices, entryBatch) {
			args := []any{r.TaskID}
			for _, d := range chunk {
				args = append(args, d)
			}
			rows, err := tx.QueryContext(ctx, s.q(`SELECT device FROM task_admissions WHERE task_id = ? AND device IN (`+
				strings.Repeat(",?", len(chunk))[1:]+`)`), args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return err
				}
				in[d] = true
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		closed := tg.Window == nil || sealed.Valid && sealed.Int64 >= millis(end)
		before := count
		for i, d := range r.Devices {
			switch {
			case in[d]:
				out[i] = true
			case closed || count >= limit:
			default:
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_admissions (task_id, device, at) VALUES (?, ?, ?)`), r.TaskID, d, millis(r.At)); err != nil {
					return err
				}
				in[d], out[i] = true, true
				count++
			}
		}
		if count == before {
			return nil
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE task_windows SET admitted = ? WHERE task_id = ?`), count, r.TaskID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// SealWindow implements mds.AdmissionStore. Taking the window row's lock
// waits for admissions in flight, so a read after the seal commits sees
// every admission there will ever be for this end.
func (s *Store) SealWindow(ctx context.Context, taskID int64, end time.Time) error {
	return s.transact(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO task_windows (task_id, admitted, sealed_until) VALUES (?, 0, ?)
			ON CONFLICT (task_id) DO UPDATE SET sealed_until = CASE
				WHEN task_windows.sealed_until IS NULL OR task_windows.sealed_until < excluded.sealed_until THEN excluded.sealed_until
				ELSE task_windows.sealed_until END`), taskID, millis(end))
		return s.refused(err, mds.ENOTFOUND, "task %d not found", taskID)
	})
}

// Admitted implements mds.AdmissionStore.
func (s *Store) Admitted(ctx context.Context, taskID int64, fn func(string) error) error {
	rows, err := s.read.QueryContext(ctx, s.q(`SELECT device FROM task_admissions WHERE task_id = ?`), taskID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AdmissionStatus implements mds.AdmissionStore.
func (s *Store) AdmissionStatus(ctx context.Context, taskID int64, device string) (bool, int, error) {
	var count, mine int
	err := s.read.QueryRowContext(ctx, s.q(`SELECT COALESCE((SELECT admitted FROM task_windows WHERE task_id = t.id), 0),
		(SELECT COUNT(*) FROM task_admissions a WHERE a.task_id = t.id AND a.device = ?)
		FROM tasks t WHERE t.id = ?`), device, taskID).Scan(&count, &mine)
	if err != nil {
		return false, 0, notFound(err, "task %d not found", taskID)
	}
	return mine > 0, count, nil
}
