-- +goose Up
-- Gray release: task stage and targeting, window admissions, reusable rule
-- sets and whitelists.
ALTER TABLE tasks ADD COLUMN stage TEXT NOT NULL DEFAULT 'official';
ALTER TABLE tasks ADD COLUMN targeting TEXT NOT NULL DEFAULT '{}';
-- How many devices the task's capped window has admitted; the admission
-- transaction increments it only while it is below the cap, which makes the
-- cap exact however many checks race.
ALTER TABLE tasks ADD COLUMN admitted {{.Int}} NOT NULL DEFAULT 0;
ALTER TABLE task_events ADD COLUMN stage TEXT NOT NULL DEFAULT 'official';

CREATE TABLE task_admissions (
    task_id {{.Int}} NOT NULL REFERENCES tasks (id),
    device  TEXT    NOT NULL,
    at      {{.Int}} NOT NULL,
    PRIMARY KEY (task_id, device)
);

CREATE TABLE rule_sets (
    id         {{.ID}},
    app_id     {{.Int}} NOT NULL REFERENCES apps (id),
    name       TEXT    NOT NULL,
    rules      TEXT    NOT NULL,
    created_at {{.Int}} NOT NULL,
    updated_at {{.Int}} NOT NULL,
    UNIQUE (app_id, name)
);

CREATE TABLE whitelists (
    id         {{.ID}},
    app_id     {{.Int}} NOT NULL REFERENCES apps (id),
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    entries    {{.Int}} NOT NULL,
    patterns   {{.Int}} NOT NULL,
    version    {{.Int}} NOT NULL,
    created_at {{.Int}} NOT NULL,
    updated_at {{.Int}} NOT NULL,
    UNIQUE (app_id, name)
);

CREATE TABLE whitelist_entries (
    whitelist_id {{.Int}} NOT NULL REFERENCES whitelists (id),
    entry        TEXT    NOT NULL,
    PRIMARY KEY (whitelist_id, entry)
);

-- +goose Down
DROP TABLE whitelist_entries;
DROP TABLE whitelists;
DROP TABLE rule_sets;
DROP TABLE task_admissions;
ALTER TABLE task_events DROP COLUMN stage;
ALTER TABLE tasks DROP COLUMN admitted;
ALTER TABLE tasks DROP COLUMN targeting;
ALTER TABLE tasks DROP COLUMN stage;
