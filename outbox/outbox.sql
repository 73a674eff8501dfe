-- The outbox table a relay publishes from. Apply once per database; the
-- table name is yours to choose (pass it to NewWriter and to the relay).
CREATE TABLE IF NOT EXISTS outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic_name    text        NOT NULL,
    msg_key       bytea,
    payload       bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published     boolean     NOT NULL DEFAULT false,
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE NOT published;
