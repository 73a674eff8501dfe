-- +goose Up
-- Heartbeat checks (heartbeat://name?grace=D): the monitored job reports
-- in with POST /ping/<token> on a monitor's ping listener, and no ping by
-- the deadline is a failed check. Only the token's SHA-256 is kept: the
-- token itself is shown once, when the site is added. A heartbeat site is
-- exactly a site with a token hash.
ALTER TABLE sites ADD COLUMN ping_token_hash bytea
    CONSTRAINT sites_ping_token_hash_len CHECK (octet_length(ping_token_hash) = 32);
-- grace_ms: the grace of the URL (?grace=D), kept by the monitor with it.
ALTER TABLE sites ADD COLUMN grace_ms integer
    CONSTRAINT sites_grace_ms_valid CHECK (grace_ms BETWEEN 1000 AND 86400000);
CREATE UNIQUE INDEX sites_ping_token_hash ON sites (ping_token_hash) WHERE ping_token_hash IS NOT NULL;
CREATE INDEX sites_heartbeat_shard ON sites (shard, id) WHERE enabled AND ping_token_hash IS NOT NULL;

-- One row per heartbeat site, created by the first ping or sweep: a check
-- fails when no ping came by deadline, and is written by whichever monitor
-- replica first locks the row past it (once: the row moves the deadline on
-- in the same transaction as the outbox insert). started_at is the last
-- /start not yet followed by a ping or a failure (the run time's start);
-- site_version the sites.updated_at the deadline last followed, so a
-- re-enabled or changed site gets a fresh one.
CREATE TABLE heartbeats (
    site_id      bigint PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    deadline     timestamptz NOT NULL,
    started_at   timestamptz,
    last_ping_at timestamptz,
    site_version timestamptz NOT NULL
);
CREATE INDEX heartbeats_deadline ON heartbeats (deadline);

-- +goose Down
DROP TABLE heartbeats;
DROP INDEX sites_heartbeat_shard;
DROP INDEX sites_ping_token_hash;
ALTER TABLE sites DROP COLUMN grace_ms, DROP COLUMN ping_token_hash;
