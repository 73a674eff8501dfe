-- The outbox table of the earlier, unpartitioned layout (sitewatch before
-- migration 00029), as outbox.sql made it then: for tests that a relay
-- still serves such a table and that CALL outbox_partition converts it.
CREATE TABLE IF NOT EXISTS outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    topic_name      text        NOT NULL,
    msg_key         bytea,
    payload         bytea       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published       boolean     NOT NULL DEFAULT false,
    published_at    timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    -- Per-key order across relay replicas: a key always lands in one of 64
    -- lanes, and each lane is leased to one relay at a time.
    lane            smallint    NOT NULL GENERATED ALWAYS AS (
        CASE WHEN msg_key IS NULL THEN (id % 64)::smallint
             ELSE (hashtextextended(encode(msg_key, 'hex'), 0) & 63)::smallint END) STORED,
    next_attempt_at timestamptz,
    parked_at       timestamptz
);
-- An outbox churns (insert, publish flip, delete by retention): vacuum it
-- after a fixed number of dead rows whatever its size and without the
-- cost-based pause, and leave room in each page so a row's updates (the
-- flip, attempts) stay in its page instead of extending the heap.
-- Re-applying sets the same values.
ALTER TABLE outbox SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_vacuum_cost_limit = 10000
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE NOT published AND parked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_retrying ON outbox (next_attempt_at)
    WHERE NOT published AND parked_at IS NULL AND next_attempt_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_published_at ON outbox (published_at) WHERE published;
CREATE INDEX IF NOT EXISTS outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;

-- Wakes relays at commit (LISTEN/NOTIFY); they also poll, so a lost
-- notification only delays a row by the poll interval. The channel is
-- "schema.table", or "outbox_" and its md5 when that is longer than a
-- channel name may be (63 bytes).
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF octet_length(channel) > 63 THEN
        channel := 'outbox_' || md5(channel);
    END IF;
    PERFORM pg_notify(channel, '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
