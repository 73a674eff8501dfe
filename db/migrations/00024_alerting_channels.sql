-- +goose Up
-- Channels of the alerting tools on-call teams run: PagerDuty (Events API
-- v2), Opsgenie (Alert API) and Prometheus Alertmanager (v2 API).
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check
    CHECK (kind IN ('webhook', 'slack', 'email', 'pagerduty', 'opsgenie', 'alertmanager'));

-- +goose Down
DELETE FROM channels WHERE kind IN ('pagerduty', 'opsgenie', 'alertmanager');
ALTER TABLE channels DROP CONSTRAINT channels_kind_check;
ALTER TABLE channels ADD CONSTRAINT channels_kind_check CHECK (kind IN ('webhook', 'slack', 'email'));
