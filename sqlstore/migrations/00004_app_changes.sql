-- +goose Up
-- Which app each revision changed: every write that moves the revision
-- records its app in the same transaction, so a node that is behind reads
-- the apps changed since its snapshot and recompiles only those. Rows are
-- kept for the newest revisions only (sqlstore.changeLog); a node further
-- behind reloads everything. No foreign key on app_id: the record that an
-- app was deleted has to outlive the app.
CREATE TABLE app_changes (
    revision {{.Int}} PRIMARY KEY,
    app_id   {{.Int}} NOT NULL
);

-- Live tasks by app: what a node reads of the apps that changed.
DROP INDEX tasks_status;
CREATE INDEX tasks_status ON tasks (status, app_id);

-- +goose Down
DROP INDEX tasks_status;
CREATE INDEX tasks_status ON tasks (status);
DROP TABLE app_changes;
