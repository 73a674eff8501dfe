-- +goose Up
-- sites: what the monitor checks. Durations are stored in milliseconds so
-- every client (Go, psql, other teams' tools) reads them without interval parsing.
CREATE TABLE sites (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url            text        NOT NULL,
    method         text        NOT NULL DEFAULT 'GET',
    regex          text,
    interval_ms    integer     NOT NULL DEFAULT 60000 CHECK (interval_ms >= 1000),
    timeout_ms     integer     NOT NULL DEFAULT 10000 CHECK (timeout_ms > 0),
    topic_name     text        NOT NULL DEFAULT 'sitewatch.checks',
    enabled        boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sites_enabled ON sites (id) WHERE enabled;

-- +goose Down
DROP TABLE sites;
