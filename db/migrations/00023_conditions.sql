-- +goose Up
-- Conditions on what comes back, and a response-time limit.
-- sites.conditions: an HTTP site's conditions ($.status == "UP",
-- header.Content-Type contains "json"), each checked once the status and
-- the regexes passed. sites.degraded_after_ms: a passing check slower than
-- this marks the site degraded rather than down (NULL: no limit).
ALTER TABLE sites
    ADD COLUMN conditions text[] NOT NULL DEFAULT '{}'
        CONSTRAINT sites_conditions_valid CHECK (cardinality(conditions) <= 16),
    ADD COLUMN degraded_after_ms integer
        CONSTRAINT sites_degraded_after_valid CHECK (degraded_after_ms >= 1);
-- What the checks report (check event version 5): each condition and how
-- it came out, and why a passing check was too slow.
ALTER TABLE stats
    ADD COLUMN conditions jsonb,
    ADD COLUMN degraded text;
-- A region whose newest check was too slow makes the site degraded.
ALTER TABLE site_region_state ADD COLUMN degraded boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE site_region_state DROP COLUMN degraded;
ALTER TABLE stats DROP COLUMN degraded, DROP COLUMN conditions;
ALTER TABLE sites DROP COLUMN degraded_after_ms, DROP COLUMN conditions;
