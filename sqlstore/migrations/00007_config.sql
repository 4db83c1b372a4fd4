-- +goose Up
-- Remote configuration: every version of every namespace of an app. A
-- version is never changed or removed but with its app; the newest
-- number of a namespace is its current version. keys is the version's
-- keys as JSON ({"name": {"type", "value", "schema", "description"}}),
-- key_count how many, so that the bound on an app's keys is a sum over
-- current versions. restores is the version a rollback copied, of the
-- same namespace; promotes the gray change (task) a promotion took in,
-- NULL once that task is deleted (the message still names it).
CREATE TABLE config_versions (
    id         {{.ID}},
    app_id     {{.Int}} NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    namespace  TEXT    NOT NULL,
    number     {{.Int}} NOT NULL CHECK (number > 0),
    keys       TEXT    NOT NULL,
    key_count  {{.Int}} NOT NULL CHECK (key_count >= 0),
    size       {{.Int}} NOT NULL CHECK (size >= 0),
    message    TEXT    NOT NULL,
    restores   {{.Int}},
    promotes   {{.Int}} REFERENCES tasks (id) ON DELETE SET NULL,
    created_at {{.Int}} NOT NULL,
    created_by TEXT    NOT NULL,
    UNIQUE (app_id, namespace, number),
    CHECK (restores IS NULL OR restores < number),
    FOREIGN KEY (app_id, namespace, restores) REFERENCES config_versions (app_id, namespace, number)
);
CREATE INDEX config_versions_promotes ON config_versions (promotes);

-- +goose Down
DROP TABLE config_versions;
