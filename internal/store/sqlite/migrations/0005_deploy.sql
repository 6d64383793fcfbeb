-- Delivery (issue 10): services, environments, releases, deployments with
-- their per-node results, deploy locks, the audit log, and nodes with their
-- desired state.

CREATE TABLE services (
    id      INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    repo_id INTEGER REFERENCES repos (id) ON DELETE SET NULL,
    spec    TEXT    NOT NULL DEFAULT '{}',
    updated INTEGER NOT NULL
);

CREATE TABLE environments (
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    spec       TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (service_id, name)
);

CREATE TABLE releases (
    id           TEXT    PRIMARY KEY,
    service      TEXT    NOT NULL,
    version      TEXT    NOT NULL DEFAULT '',
    artifact_url TEXT    NOT NULL DEFAULT '',
    sha256       TEXT    NOT NULL DEFAULT '',
    size         INTEGER NOT NULL DEFAULT 0,
    format       TEXT    NOT NULL DEFAULT '',
    image_ref    TEXT    NOT NULL DEFAULT '',
    image_digest TEXT    NOT NULL DEFAULT '',
    build_id     INTEGER NOT NULL DEFAULT 0,
    repo_id      INTEGER NOT NULL DEFAULT 0,
    commit_sha   TEXT    NOT NULL DEFAULT '',
    branch       TEXT    NOT NULL DEFAULT '',
    creator      TEXT    NOT NULL DEFAULT '',
    created      INTEGER NOT NULL
);
CREATE INDEX releases_service ON releases (service, created);

CREATE TABLE deployments (
    id            INTEGER PRIMARY KEY,
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    release_id    TEXT    NOT NULL REFERENCES releases (id),
    trigger_kind  TEXT    NOT NULL DEFAULT '',
    creator       TEXT    NOT NULL DEFAULT '',
    build_id      INTEGER NOT NULL DEFAULT 0,
    state         TEXT    NOT NULL,
    batch         INTEGER NOT NULL DEFAULT 0,
    batches       INTEGER NOT NULL DEFAULT 0,
    reason        TEXT    NOT NULL DEFAULT '',
    plan          TEXT    NOT NULL DEFAULT '{}',
    paused        INTEGER NOT NULL DEFAULT 0,
    cancel        INTEGER NOT NULL DEFAULT 0,
    approved      INTEGER NOT NULL DEFAULT 0,
    approved_by   TEXT    NOT NULL DEFAULT '',
    batch_started INTEGER,
    wait_until    INTEGER,
    lease_owner   TEXT    NOT NULL DEFAULT '',
    lease_until   INTEGER,
    created       INTEGER NOT NULL,
    started       INTEGER,
    finished      INTEGER,
    version       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX deployments_env ON deployments (service, environment, id);
CREATE INDEX deployments_active ON deployments (state);

CREATE TABLE deployment_nodes (
    deployment_id INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    node_id       INTEGER NOT NULL,
    node          TEXT    NOT NULL,
    batch         INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    previous      TEXT    NOT NULL DEFAULT '',
    error         TEXT    NOT NULL DEFAULT '',
    started       INTEGER,
    finished      INTEGER,
    PRIMARY KEY (deployment_id, node_id)
);

CREATE TABLE deploy_locks (
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    deployment_id INTEGER NOT NULL DEFAULT 0,
    holder        TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    created       INTEGER NOT NULL,
    PRIMARY KEY (service, environment)
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    time          INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    service       TEXT    NOT NULL DEFAULT '',
    environment   TEXT    NOT NULL DEFAULT '',
    deployment_id INTEGER NOT NULL DEFAULT 0,
    release_id    TEXT    NOT NULL DEFAULT '',
    reason        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_env ON audit_log (service, environment, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE nodes (
    id              INTEGER PRIMARY KEY,
    token_id        INTEGER NOT NULL UNIQUE REFERENCES tokens (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    labels          TEXT    NOT NULL DEFAULT '{}',
    version         TEXT    NOT NULL DEFAULT '',
    actual          TEXT    NOT NULL DEFAULT '[]',
    last_seen       INTEGER,
    desired_version INTEGER NOT NULL DEFAULT 0,
    created         INTEGER NOT NULL
);

CREATE TABLE node_desired (
    node_id     INTEGER NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    service     TEXT    NOT NULL,
    environment TEXT    NOT NULL DEFAULT '',
    release_id  TEXT    NOT NULL,
    updated     INTEGER NOT NULL,
    PRIMARY KEY (node_id, service)
);
