-- +goose Up
-- stats: one row per check, written by the sink. event_id is unique so a
-- message Kafka delivers twice never makes a second row.
CREATE TABLE stats (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    site_id        bigint      NOT NULL,
    url            text        NOT NULL,
    checked_at     timestamptz NOT NULL,
    status_code    integer,
    duration_ms    double precision NOT NULL,
    regex          text,
    regex_matched  boolean,
    error_class    text,
    error          text,
    topic_name     text        NOT NULL,
    kafka_partition integer    NOT NULL,
    kafka_offset   bigint      NOT NULL,
    inserted_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stats_site_checked ON stats (site_id, checked_at);

-- +goose Down
DROP TABLE stats;
