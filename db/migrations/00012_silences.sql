-- +goose Up
-- Silences (maintenance windows): incidents are still recorded, but their
-- notifications wait until the silence ends; an incident opened and
-- resolved within one is never notified.
CREATE TABLE silences (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id    bigint      NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    starts_at  timestamptz NOT NULL DEFAULT now(),
    until      timestamptz NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (until > starts_at)
);
CREATE INDEX silences_site ON silences (site_id, until);

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'silenced'));

-- +goose Down
UPDATE deliveries SET status = 'failed', last_error = 'silenced' WHERE status = 'silenced';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN ('pending', 'delivered', 'failed'));
DROP TABLE silences;
