-- +goose Up
-- Offline packages: every version an app's offline packages took, which of
-- them were released, and the deltas between released versions.

-- Every version of an app's offline packages, and the host it serves. A
-- deleted package leaves its row behind (artifact_id NULL), so that no
-- version is used twice and a device can always tell newer from older.
-- released_at is set when a task first delivers the version: deltas are
-- built from released versions only, the ones devices may hold. The
-- unique constraint backs the check CreateArtifact makes under the app's
-- lock.
CREATE TABLE offline_versions (
    app_id      {{.Int}} NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    package     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    artifact_id {{.Int}} REFERENCES artifacts (id) ON DELETE SET NULL,
    released_at {{.Int}},
    UNIQUE (app_id, package, version)
);
CREATE INDEX offline_versions_artifact ON offline_versions (artifact_id);
CREATE INDEX offline_versions_host ON offline_versions (app_id, host);

-- The delta from one version of a package (from_id) to a later one
-- (to_id). Both are artifacts of the app, and a ready delta's file is a
-- blob of the app, so an app's token reaches only its own deltas; deleting
-- either version deletes the delta. lease is when the claim of the node
-- building it runs out, or, while it is pending, when it may be tried
-- again (Unix milliseconds; 0: at once).
CREATE TABLE deltas (
    app_id     {{.Int}} NOT NULL,
    from_id    {{.Int}} NOT NULL,
    to_id      {{.Int}} NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'building', 'ready', 'failed', 'skipped')),
    sha256     TEXT,
    size       {{.Int}},
    reason     TEXT    NOT NULL,
    attempts   {{.Int}} NOT NULL,
    lease      {{.Int}} NOT NULL,
    build_ms   {{.Int}} NOT NULL,
    created_at {{.Int}} NOT NULL,
    updated_at {{.Int}} NOT NULL,
    PRIMARY KEY (from_id, to_id),
    CHECK (from_id <> to_id),
    CHECK ((status = 'ready') = (sha256 IS NOT NULL)),
    FOREIGN KEY (app_id, from_id) REFERENCES artifacts (app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, to_id) REFERENCES artifacts (app_id, id) ON DELETE CASCADE,
    FOREIGN KEY (app_id, sha256, size) REFERENCES blobs (app_id, sha256, size)
);
CREATE INDEX deltas_to ON deltas (to_id);
CREATE INDEX deltas_queue ON deltas (status, created_at);

-- +goose Down
DROP TABLE deltas;
DROP TABLE offline_versions;
