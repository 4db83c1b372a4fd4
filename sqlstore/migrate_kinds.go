package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mds-dev/mds"
	"github.com/mds-dev/mds/version"
)

// kindsSchema is the schema of version 3: artifacts of any kind (a header
// and a kind's spec) in place of upgrade packages, tasks with a kind's
// policy, blobs owned by the app that uploaded them, and every reference
// between rows a foreign key within one app. Tables that change shape are
// built beside the old ones (*_v3), filled, and renamed over them, which
// both databases do inside the migration's transaction.
const kindsSchema = `
CREATE UNIQUE INDEX rule_sets_app_id ON rule_sets (app_id, id);
CREATE UNIQUE INDEX whitelists_app_id ON whitelists (app_id, id);

ALTER TABLE apps ADD COLUMN previous_key TEXT;
CREATE UNIQUE INDEX apps_previous_key ON apps (previous_key);

CREATE TABLE blobs (
    app_id     {{.Int}} NOT NULL REFERENCES apps (id),
    sha256     TEXT    NOT NULL,
    size       {{.Int}} NOT NULL,
    created_at {{.Int}} NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (app_id, sha256),
    UNIQUE (app_id, sha256, size)
);

CREATE TABLE artifacts (
    id         {{.ID}},
    app_id     {{.Int}} NOT NULL REFERENCES apps (id),
    kind       TEXT    NOT NULL,
    platform   TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    created_at {{.Int}} NOT NULL,
    created_by TEXT    NOT NULL,
    UNIQUE (app_id, id),
    UNIQUE (app_id, id, kind)
);

-- An artifact's files must be blobs its own app uploaded, of the size it says.
CREATE TABLE artifact_blobs (
    app_id      {{.Int}} NOT NULL,
    artifact_id {{.Int}} NOT NULL,
    role        TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    size        {{.Int}} NOT NULL,
    PRIMARY KEY (artifact_id, role),
    FOREIGN KEY (app_id, artifact_id) REFERENCES artifacts (app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, sha256, size) REFERENCES blobs (app_id, sha256, size)
);

-- A task delivers an artifact of its own app and kind (none for kinds
-- without artifacts).
CREATE TABLE tasks_v3 (
    id          {{.ID}},
    app_id      {{.Int}} NOT NULL REFERENCES apps (id),
    kind        TEXT    NOT NULL,
    artifact_id {{.Int}},
    policy      TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    targeting   TEXT    NOT NULL,
    created_at  {{.Int}} NOT NULL,
    updated_at  {{.Int}} NOT NULL,
    created_by  TEXT    NOT NULL,
    UNIQUE (app_id, id),
    FOREIGN KEY (app_id, artifact_id, kind) REFERENCES artifacts (app_id, id, kind)
);

CREATE TABLE task_events_v3 (
    id      {{.ID}},
    task_id {{.Int}} NOT NULL REFERENCES tasks_v3 (id) ON DELETE CASCADE,
    at      {{.Int}} NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    status  TEXT    NOT NULL,
    stage   TEXT    NOT NULL
);

CREATE TABLE task_admissions_v3 (
    task_id {{.Int}} NOT NULL REFERENCES tasks_v3 (id) ON DELETE CASCADE,
    device  TEXT    NOT NULL,
    at      {{.Int}} NOT NULL,
    PRIMARY KEY (task_id, device)
);

-- How many devices a task's capped window admitted, and the end of the
-- window it was sealed at: the admission transaction increments admitted
-- only while it is below the cap and the window is not sealed, which keeps
-- the cap exact and a closed window's set final however checks race.
CREATE TABLE task_windows (
    task_id      {{.Int}} PRIMARY KEY REFERENCES tasks_v3 (id) ON DELETE CASCADE,
    admitted     {{.Int}} NOT NULL,
    sealed_until {{.Int}}
);

-- The rule sets and whitelists a task that is not stopped uses. The task's
-- targeting names them too; these rows are what makes the database refuse
-- to delete one in use, even when the delete races the task's update.
CREATE TABLE task_rule_sets (
    app_id      {{.Int}} NOT NULL,
    task_id     {{.Int}} NOT NULL,
    rule_set_id {{.Int}} NOT NULL,
    PRIMARY KEY (task_id, rule_set_id),
    FOREIGN KEY (app_id, task_id) REFERENCES tasks_v3 (app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, rule_set_id) REFERENCES rule_sets (app_id, id)
);

CREATE TABLE task_whitelists (
    app_id       {{.Int}} NOT NULL,
    task_id      {{.Int}} NOT NULL,
    whitelist_id {{.Int}} NOT NULL,
    PRIMARY KEY (task_id, whitelist_id),
    FOREIGN KEY (app_id, task_id) REFERENCES tasks_v3 (app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, whitelist_id) REFERENCES whitelists (app_id, id)
);
`

// kindsFinish replaces the old tables by the new ones; children go before
// their parents, so no drop trips a foreign key.
const kindsFinish = `
DROP TABLE task_admissions;
DROP TABLE task_events;
DROP TABLE tasks;
DROP TABLE packages;
ALTER TABLE tasks_v3 RENAME TO tasks;
ALTER TABLE task_events_v3 RENAME TO task_events;
ALTER TABLE task_admissions_v3 RENAME TO task_admissions;
CREATE INDEX artifacts_app ON artifacts (app_id, kind, id);
CREATE INDEX artifact_blobs_blob ON artifact_blobs (app_id, sha256, size);
CREATE INDEX tasks_app ON tasks (app_id, id);
CREATE INDEX tasks_status ON tasks (status);
CREATE INDEX tasks_artifact ON tasks (app_id, artifact_id, kind);
CREATE INDEX task_events_task ON task_events (task_id, id);
CREATE INDEX task_rule_sets_rule_set ON task_rule_sets (app_id, rule_set_id);
CREATE INDEX task_whitelists_whitelist ON task_whitelists (app_id, whitelist_id);
`

// kindsMigration is schema version 3. Upgrade packages become artifacts of
// kind upgrade whose spec is the old columns; tasks get their upgrade mode
// and interval as a policy; references move into join tables. IDs are kept,
// and so are the ID counters, so no ID is ever handed out twice.
func kindsMigration(ctx context.Context, tx *sql.Tx, d Dialect) error {
	m := migration{ctx: ctx, tx: tx, d: d}
	m.script(kindsSchema)
	m.exec(`INSERT INTO blobs (app_id, sha256, size, created_at, created_by)
		SELECT app_id, sha256, MAX(size), MIN(created_at), MIN(created_by) FROM packages
		WHERE source = 'blob' GROUP BY app_id, sha256`)
	m.copyPackages()
	m.exec(`INSERT INTO artifact_blobs (app_id, artifact_id, role, sha256, size)
		SELECT app_id, id, 'package', sha256, size FROM packages WHERE source = 'blob'`)
	stopped := m.copyTasks()
	m.exec(`INSERT INTO task_events_v3 (id, task_id, at, actor, action, status, stage)
		SELECT id, task_id, at, actor, action, status, stage FROM task_events`)
	m.exec(`INSERT INTO task_admissions_v3 (task_id, device, at) SELECT task_id, device, at FROM task_admissions`)
	m.exec(`INSERT INTO task_windows (task_id, admitted) SELECT id, admitted FROM tasks WHERE admitted > 0`)
	m.carryCounter("packages", "artifacts")
	m.carryCounter("tasks", "tasks_v3")
	m.carryCounter("task_events", "task_events_v3")
	m.script(kindsFinish)
	// SQLite counted "RE:" entries as patterns (its LIKE ignores case).
	m.exec(`UPDATE whitelists SET patterns = (SELECT COUNT(*) FROM whitelist_entries e
		WHERE e.whitelist_id = whitelists.id AND SUBSTR(e.entry, 1, ` + patternPrefixLen + `) = '` + mds.PatternPrefix + `')`)
	for _, id := range stopped {
		m.exec(`INSERT INTO task_events (task_id, at, actor, action, status, stage)
			SELECT id, updated_at, 'mds migration', 'stop: it named a rule set or whitelist that no longer exists', status, stage
			FROM tasks WHERE id = ?`, id)
	}
	return m.err
}

// migration runs statements until the first error, which it keeps.
type migration struct {
	ctx context.Context
	tx  *sql.Tx
	d   Dialect
	err error
}

func (m *migration) exec(query string, args ...any) {
	if m.err != nil {
		return
	}
	if _, err := m.tx.ExecContext(m.ctx, m.d.q(query), args...); err != nil {
		m.err = fmt.Errorf("%.60s…: %w", strings.TrimSpace(query), err)
	}
}

// script renders a template of statements for the dialect and runs them
// one by one.
func (m *migration) script(text string) {
	if m.err != nil {
		return
	}
	text, m.err = m.d.render("kinds", text)
	for stmt := range strings.SplitSeq(text, ";\n") {
		if strings.TrimSpace(stripComments(stmt)) != "" {
			m.exec(stmt)
		}
	}
}

func stripComments(stmt string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// copyPackages turns every package into an upgrade artifact.
func (m *migration) copyPackages() {
	if m.err != nil {
		return
	}
	rows, err := m.tx.QueryContext(m.ctx, `SELECT id, app_id, platform, version, build, notes, source, sha256, size,
		url, file_name, app_versions, channel, network, silent, enterprise, bundle_id, title, created_at, created_by FROM packages`)
	if err != nil {
		m.err = err
		return
	}
	type artifact struct {
		id, app                      int64
		platform, version, createdBy string
		created                      int64
		spec                         []byte
	}
	var all []artifact
	for rows.Next() {
		var a artifact
		var s mds.UpgradeSpec
		var ranges string
		if err := rows.Scan(&a.id, &a.app, &a.platform, &a.version, &s.Build, &s.Notes, &s.Source, &s.SHA256, &s.Size,
			&s.URL, &s.FileName, &ranges, &s.Channel, &s.Network, &s.Silent, &s.Enterprise, &s.BundleID, &s.Title,
			&a.created, &a.createdBy); err != nil {
			rows.Close()
			m.err = err
			return
		}
		var vr []version.Range
		if err := json.Unmarshal([]byte(ranges), &vr); err != nil {
			rows.Close()
			m.err = fmt.Errorf("package %d: app_versions: %w", a.id, err)
			return
		}
		s.AppVersions = vr
		if a.spec, err = json.Marshal(&s); err != nil {
			rows.Close()
			m.err = err
			return
		}
		all = append(all, a)
	}
	rows.Close()
	if m.err = rows.Err(); m.err != nil {
		return
	}
	for _, a := range all {
		m.exec(`INSERT INTO artifacts (id, app_id, kind, platform, version, spec, created_at, created_by)
			VALUES (?, ?, 'upgrade', ?, ?, ?, ?, ?)`, a.id, a.app, a.platform, a.version, string(a.spec), a.created, a.createdBy)
	}
}

// copyTasks moves tasks over with their upgrade policy and records the
// references of those not stopped. A task naming a rule set or whitelist
// that no longer exists (an old race let that happen) reached no one, as
// its snapshot left it out; it is stopped, which keeps that and says so,
// rather than dropping the reference and widening its audience.
func (m *migration) copyTasks() (stopped []int64) {
	if m.err != nil {
		return nil
	}
	rows, err := m.tx.QueryContext(m.ctx, `SELECT id, app_id, package_id, mode, remind_interval_ms, status, stage, targeting,
		created_at, updated_at, created_by FROM tasks`)
	if err != nil {
		m.err = err
		return nil
	}
	type task struct {
		id, app, pkg, interval, created, updated int64
		mode, status, stage, targeting, by       string
	}
	var all []task
	for rows.Next() {
		var t task
		if err := rows.Scan(&t.id, &t.app, &t.pkg, &t.mode, &t.interval, &t.status, &t.stage, &t.targeting,
			&t.created, &t.updated, &t.by); err != nil {
			rows.Close()
			m.err = err
			return nil
		}
		all = append(all, t)
	}
	rows.Close()
	if m.err = rows.Err(); m.err != nil {
		return nil
	}
	for _, t := range all {
		policy, err := json.Marshal(&mds.UpgradePolicy{Mode: mds.UpgradeMode(t.mode), RemindInterval: time.Duration(t.interval) * time.Millisecond})
		if err != nil {
			m.err = err
			return nil
		}
		var refs mds.Targeting
		if err := json.Unmarshal([]byte(t.targeting), &refs); err != nil {
			m.err = fmt.Errorf("task %d: targeting: %w", t.id, err)
			return nil
		}
		if t.stage == string(mds.StageOfficial) && refs.HasGates() {
			// Promotion used to keep the gray gates, unused; it drops them
			// now, and so does the migration, so that a task shows what is
			// in force and a whitelist it no longer uses can go.
			refs.Whitelists, refs.Rollout, refs.Window = nil, nil, nil
			b, err := json.Marshal(refs)
			if err != nil {
				m.err = err
				return nil
			}
			t.targeting = string(b)
		}
		if t.status != string(mds.StatusStopped) && (!m.allExist("rule_sets", t.app, refs.RuleSets) || !m.allExist("whitelists", t.app, refs.Whitelists)) {
			t.status = string(mds.StatusStopped)
			stopped = append(stopped, t.id)
		}
		m.exec(`INSERT INTO tasks_v3 (id, app_id, kind, artifact_id, policy, status, stage, targeting, created_at, updated_at, created_by)
			VALUES (?, ?, 'upgrade', ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.id, t.app, t.pkg, string(policy), t.status, t.stage, t.targeting, t.created, t.updated, t.by)
		if t.status == string(mds.StatusStopped) {
			continue
		}
		for _, id := range refs.RuleSets {
			m.exec(`INSERT INTO task_rule_sets (app_id, task_id, rule_set_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, t.app, t.id, id)
		}
		for _, id := range refs.Whitelists {
			m.exec(`INSERT INTO task_whitelists (app_id, task_id, whitelist_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, t.app, t.id, id)
		}
	}
	return stopped
}

func (m *migration) allExist(table string, app int64, ids []int64) bool {
	for _, id := range ids {
		var n int
		if m.err == nil {
			m.err = m.tx.QueryRowContext(m.ctx, m.d.q(`SELECT COUNT(*) FROM `+table+` WHERE app_id = ? AND id = ?`), app, id).Scan(&n)
		}
		if n == 0 {
			return false
		}
	}
	return true
}

// carryCounter makes table to's ID counter continue from table from's, so
// that an ID handed out before the migration (even of a row since deleted)
// is never handed out again.
func (m *migration) carryCounter(from, to string) {
	if m.err != nil {
		return
	}
	// The counter may lag the highest ID when rows were written with
	// explicit IDs, so the new one starts past both.
	var last, highest sql.NullInt64
	if m.err = m.tx.QueryRowContext(m.ctx, `SELECT MAX(id) FROM `+to).Scan(&highest); m.err != nil {
		return
	}
	if m.d.Name == Postgres {
		m.err = m.tx.QueryRowContext(m.ctx, `SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass)`, from).Scan(&last)
	} else if err := m.tx.QueryRowContext(m.ctx, `SELECT seq FROM sqlite_sequence WHERE name = ?`, from).Scan(&last); err != sql.ErrNoRows {
		m.err = err
	}
	next := max(last.Int64, highest.Int64)
	if m.err != nil || next == 0 {
		return
	}
	if m.d.Name == Postgres {
		m.exec(`SELECT setval(pg_get_serial_sequence(?, 'id'), ?)`, to, next)
		return
	}
	m.exec(`DELETE FROM sqlite_sequence WHERE name = ?`, to)
	m.exec(`INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)`, to, next)
}
