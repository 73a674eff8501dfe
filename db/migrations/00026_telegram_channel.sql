-- +goose Up
-- Telegram channels: a bot posts to a chat. The URL is the Bot API's base
-- with the chat (?chat_id=), the secret the bot's token.
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'opsgenie', 'alertmanager', 'discord', 'teams', 'ntfy', 'telegram'));

-- +goose Down
DELETE FROM channels WHERE kind = 'telegram';
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'opsgenie', 'alertmanager', 'discord', 'teams', 'ntfy'));
