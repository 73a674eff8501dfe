-- +goose Up
-- E-mail channels: url smtp://[user@]host:port?from=...&to=..., the
-- password in secret.
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check CHECK (kind IN ('webhook', 'slack', 'email'));

-- +goose Down
DELETE FROM channels WHERE kind = 'email';
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check CHECK (kind IN ('webhook', 'slack'));
