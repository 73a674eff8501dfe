-- +goose Up
-- Lanes give per-key order with several relays: a key always hashes to the
-- same lane and each lane is leased to one relay at a time (an advisory
-- lock). Rows without a key spread over the lanes by id.
ALTER TABLE outbox
    ADD COLUMN lane smallint NOT NULL GENERATED ALWAYS AS (
        CASE WHEN msg_key IS NULL THEN (id % 64)::smallint
             ELSE (hashtextextended(encode(msg_key, 'hex'), 0) & 63)::smallint END) STORED,
    -- A row Kafka refused waits until next_attempt_at; after the attempt
    -- limit it is parked (parked_at set) and no longer blocks its key.
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN parked_at timestamptz;

DROP INDEX outbox_unpublished;
CREATE INDEX outbox_pending ON outbox (id) WHERE NOT published AND parked_at IS NULL;
CREATE INDEX outbox_retrying ON outbox (next_attempt_at) WHERE NOT published AND parked_at IS NULL AND next_attempt_at IS NOT NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published;
CREATE INDEX outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;

-- Wake the relays at commit: one notification per inserting statement
-- (PostgreSQL folds duplicates within a transaction), on a channel named
-- after the table so relays of different outboxes do not wake each other.
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- +goose Down
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP INDEX outbox_parked;
DROP INDEX outbox_published_at;
DROP INDEX outbox_retrying;
DROP INDEX outbox_pending;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE NOT published;
ALTER TABLE outbox DROP COLUMN parked_at, DROP COLUMN next_attempt_at, DROP COLUMN lane;
