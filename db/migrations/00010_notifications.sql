-- +goose Up
-- Notification channels, which sites use which, and one delivery row per
-- incident event and channel: the notifier records them, commits its
-- offset, then delivers from the rows with retries per channel.
CREATE TABLE channels (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    kind       text        NOT NULL CHECK (kind IN ('webhook', 'slack')),
    url        text        NOT NULL,
    secret     text        NOT NULL DEFAULT '', -- webhook: the HMAC-SHA256 key of the signature header
    is_default boolean     NOT NULL DEFAULT false, -- used by sites that name no channels
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE site_channels (
    site_id    bigint NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    PRIMARY KEY (site_id, channel_id)
);

CREATE TABLE deliveries (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL, -- the incident event's; the receiver's idempotency key
    channel_id      bigint      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (event_id, channel_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP TABLE deliveries;
DROP TABLE site_channels;
DROP TABLE channels;
