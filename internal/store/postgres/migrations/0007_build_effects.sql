-- The once-per-cluster side effects of a finished build (its final commit
-- status, notifications, automatic deployments): claimed by one server
-- until claimed_until, done once they ran. A finished build without a
-- done row is picked up again by any server's maintenance sweep, so a
-- server killed between finishing a build and its side effects loses none.
CREATE TABLE build_effects (
    build_id      BIGINT   NOT NULL PRIMARY KEY REFERENCES builds (id) ON DELETE CASCADE,
    owner         TEXT     NOT NULL DEFAULT '',
    claimed_until TIMESTAMPTZ,
    done          BOOLEAN  NOT NULL DEFAULT FALSE
);
-- Builds that finished before this migration had their side effects.
INSERT INTO build_effects (build_id, owner, done)
    SELECT id, 'migration', TRUE FROM builds WHERE finished IS NOT NULL;
CREATE INDEX builds_finished ON builds (finished);
