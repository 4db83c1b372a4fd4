-- +goose Up
-- Times are Unix milliseconds; see sqlstore.millis. IDs are never reused
-- (SQLite's AUTOINCREMENT, PostgreSQL's identity columns), so a stale ID
-- never names a new row.
CREATE TABLE meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision {{.Int}} NOT NULL
);
INSERT INTO meta (id, revision) VALUES (1, 0);

CREATE TABLE apps (
    id         {{.ID}},
    slug       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    app_key    TEXT    NOT NULL UNIQUE,
    platforms  TEXT    NOT NULL,
    created_at {{.Int}} NOT NULL
);

CREATE TABLE packages (
    id           {{.ID}},
    app_id       {{.Int}} NOT NULL REFERENCES apps (id),
    platform     TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    build        {{.Int}} NOT NULL,
    notes        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    size         {{.Int}} NOT NULL,
    url          TEXT    NOT NULL,
    file_name    TEXT    NOT NULL,
    app_versions TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    network      TEXT    NOT NULL,
    silent       BOOLEAN NOT NULL,
    enterprise   BOOLEAN NOT NULL,
    bundle_id    TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    created_at   {{.Int}} NOT NULL,
    created_by   TEXT    NOT NULL
);
CREATE INDEX packages_app ON packages (app_id, id);

CREATE TABLE tasks (
    id                 {{.ID}},
    app_id             {{.Int}} NOT NULL REFERENCES apps (id),
    package_id         {{.Int}} NOT NULL REFERENCES packages (id),
    kind               TEXT    NOT NULL,
    mode               TEXT    NOT NULL,
    remind_interval_ms {{.Int}} NOT NULL,
    status             TEXT    NOT NULL,
    created_at         {{.Int}} NOT NULL,
    updated_at         {{.Int}} NOT NULL,
    created_by         TEXT    NOT NULL
);
CREATE INDEX tasks_app ON tasks (app_id, id);
CREATE INDEX tasks_status ON tasks (status);

CREATE TABLE task_events (
    id      {{.ID}},
    task_id {{.Int}} NOT NULL REFERENCES tasks (id),
    at      {{.Int}} NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    status  TEXT    NOT NULL
);
CREATE INDEX task_events_task ON task_events (task_id, id);

CREATE TABLE tokens (
    id         {{.ID}},
    name       TEXT    NOT NULL UNIQUE,
    hash       TEXT    NOT NULL UNIQUE,
    admin      BOOLEAN NOT NULL,
    expires_at {{.Int}},
    created_at {{.Int}} NOT NULL,
    created_by TEXT    NOT NULL
);

CREATE TABLE token_grants (
    token_id {{.Int}} NOT NULL REFERENCES tokens (id),
    app_id   {{.Int}} NOT NULL REFERENCES apps (id),
    role     TEXT    NOT NULL,
    PRIMARY KEY (token_id, app_id)
);

-- +goose Down
DROP TABLE token_grants;
DROP TABLE tokens;
DROP TABLE task_events;
DROP TABLE tasks;
DROP TABLE packages;
DROP TABLE apps;
DROP TABLE meta;
