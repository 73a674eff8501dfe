-- +goose Up
-- outbox: the transactional outbox. Writers insert rows in their own
-- transaction; the relay publishes them to Kafka and flips `published`
-- only after Kafka acknowledged them. Key and payload are bytes so the
-- relay stays generic (JSON, Avro, Protobuf all pass through unchanged).
CREATE TABLE outbox (
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

-- The relay only ever scans unpublished rows in id order; a partial index
-- keeps that scan small however many published rows are still retained.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE NOT published;

-- +goose Down
DROP TABLE outbox;
