-- Delivery (issue 10): services, environments, releases, deployments with
-- their per-node results, deploy locks, the audit log, and nodes with their
-- desired state.

CREATE TABLE services (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    repo_id BIGINT REFERENCES repos (id) ON DELETE SET NULL,
    spec    TEXT    NOT NULL DEFAULT '{}',
    updated TIMESTAMPTZ NOT NULL
);

CREATE TABLE environments (
    service_id BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    position   BIGINT NOT NULL,
    spec       TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (service_id, name)
);

CREATE TABLE releases (
    id           TEXT    PRIMARY KEY,
    service      TEXT    NOT NULL,
    version      TEXT    NOT NULL DEFAULT '',
    artifact_url TEXT    NOT NULL DEFAULT '',
    sha256       TEXT    NOT NULL DEFAULT '',
    size         BIGINT NOT NULL DEFAULT 0,
    format       TEXT    NOT NULL DEFAULT '',
    image_ref    TEXT    NOT NULL DEFAULT '',
    image_digest TEXT    NOT NULL DEFAULT '',
    build_id     BIGINT NOT NULL DEFAULT 0,
    repo_id      BIGINT NOT NULL DEFAULT 0,
    commit_sha   TEXT    NOT NULL DEFAULT '',
    branch       TEXT    NOT NULL DEFAULT '',
    creator      TEXT    NOT NULL DEFAULT '',
    created      TIMESTAMPTZ NOT NULL
);
CREATE INDEX releases_service ON releases (service, created);

CREATE TABLE deployments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    release_id    TEXT    NOT NULL REFERENCES releases (id),
    trigger_kind  TEXT    NOT NULL DEFAULT '',
    creator       TEXT    NOT NULL DEFAULT '',
    build_id      BIGINT NOT NULL DEFAULT 0,
    state         TEXT    NOT NULL,
    batch         BIGINT NOT NULL DEFAULT 0,
    batches       BIGINT NOT NULL DEFAULT 0,
    reason        TEXT    NOT NULL DEFAULT '',
    plan          TEXT    NOT NULL DEFAULT '{}',
    paused        BOOLEAN NOT NULL DEFAULT FALSE,
    cancel        BOOLEAN NOT NULL DEFAULT FALSE,
    approved      BOOLEAN NOT NULL DEFAULT FALSE,
    approved_by   TEXT    NOT NULL DEFAULT '',
    batch_started TIMESTAMPTZ,
    wait_until    TIMESTAMPTZ,
    lease_owner   TEXT    NOT NULL DEFAULT '',
    lease_until   TIMESTAMPTZ,
    created       TIMESTAMPTZ NOT NULL,
    started       TIMESTAMPTZ,
    finished      TIMESTAMPTZ,
    version       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX deployments_env ON deployments (service, environment, id);
CREATE INDEX deployments_active ON deployments (state);

CREATE TABLE deployment_nodes (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    node_id       BIGINT NOT NULL,
    node          TEXT    NOT NULL,
    batch         BIGINT NOT NULL,
    state         TEXT    NOT NULL,
    previous      TEXT    NOT NULL DEFAULT '',
    error         TEXT    NOT NULL DEFAULT '',
    started       TIMESTAMPTZ,
    finished      TIMESTAMPTZ,
    PRIMARY KEY (deployment_id, node_id)
);

CREATE TABLE deploy_locks (
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    deployment_id BIGINT NOT NULL DEFAULT 0,
    holder        TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    created       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (service, environment)
);

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time          TIMESTAMPTZ NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    service       TEXT    NOT NULL DEFAULT '',
    environment   TEXT    NOT NULL DEFAULT '',
    deployment_id BIGINT NOT NULL DEFAULT 0,
    release_id    TEXT    NOT NULL DEFAULT '',
    reason        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_env ON audit_log (service, environment, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE nodes (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id        BIGINT NOT NULL UNIQUE REFERENCES tokens (id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    labels          TEXT    NOT NULL DEFAULT '{}',
    version         TEXT    NOT NULL DEFAULT '',
    actual          TEXT    NOT NULL DEFAULT '[]',
    last_seen       TIMESTAMPTZ,
    desired_version BIGINT NOT NULL DEFAULT 0,
    created         TIMESTAMPTZ NOT NULL
);

CREATE TABLE node_desired (
    node_id     BIGINT NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
    service     TEXT    NOT NULL,
    environment TEXT    NOT NULL DEFAULT '',
    release_id  TEXT    NOT NULL,
    updated     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (node_id, service)
);
