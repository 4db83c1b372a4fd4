-- +goose Up
-- Hotpatches: the revision of each app's last change, the team keys
-- hotpatches are signed with, and every patch version an app ever used.

-- The store revision of the app's last change (sqlstore.bump sets it), so
-- every node tells devices the same version of what they are told. Apps
-- start at the revision of the moment: nothing says which write changed
-- them last, and that one is at least as new.
ALTER TABLE apps ADD COLUMN revision {{.Int}} NOT NULL DEFAULT 0;
UPDATE apps SET revision = (SELECT revision FROM meta WHERE id = 1);

-- An app's team keys, by key ID (the SHA-256 of the public key, hex). A
-- retired key keeps its row for good: its ID can never be registered
-- again, so packages it signed are never accepted again.
CREATE TABLE team_keys (
    app_id     {{.Int}} NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id         TEXT    NOT NULL,
    alg        TEXT    NOT NULL,
    pem        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at {{.Int}} NOT NULL,
    created_by TEXT    NOT NULL,
    retired_at {{.Int}},
    retired_by TEXT,
    PRIMARY KEY (app_id, id)
);

-- Every patch version an app's hotpatches took, per platform and patched
-- app version. A deleted hotpatch leaves its rows behind (artifact_id
-- NULL), so that no patch version is ever used twice and a device can
-- always tell newer from older. The unique constraint backs the check
-- CreateArtifact makes under the app's lock.
CREATE TABLE hotpatch_versions (
    app_id        {{.Int}} NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    platform      TEXT    NOT NULL,
    app_version   TEXT    NOT NULL,
    patch_version {{.Int}} NOT NULL,
    artifact_id   {{.Int}} REFERENCES artifacts (id) ON DELETE SET NULL,
    UNIQUE (app_id, platform, app_version, patch_version)
);
-- What deleting an artifact looks up to clear its references.
CREATE INDEX hotpatch_versions_artifact ON hotpatch_versions (artifact_id);

-- +goose Down
DROP TABLE hotpatch_versions;
DROP TABLE team_keys;
ALTER TABLE apps DROP COLUMN revision;
