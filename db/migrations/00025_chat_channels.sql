-- +goose Up
-- Channels of the chat and push services besides Slack: Discord, Microsoft
-- Teams (a Workflows webhook) and ntfy.
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'opsgenie', 'alertmanager', 'discord', 'teams', 'ntfy'));

-- +goose Down
DELETE FROM channels WHERE kind IN ('discord', 'teams', 'ntfy');
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'opsgenie', 'alertmanager'));
