-- +goose Up
-- Issue 9: an outbox churns: every row is inserted, updated once
-- (published) and deleted by the relay's retention. Autovacuum's defaults
-- (vacuum at 20 % dead rows, a cost limit shared by every table) let a
-- busy outbox grow to gigabytes of dead tuples. Vacuum it after a fixed
-- number of dead rows whatever its size, without the cost-based pause, and
-- leave room in each page so a row's updates (the flip, attempts) stay in
-- its page instead of extending the heap. Kept equal
-- to outbox/outbox.sql (db.TestMigratedOutboxIsTheDDLsOutbox compares them).
ALTER TABLE outbox SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_vacuum_cost_limit = 10000
);

-- +goose Down
ALTER TABLE outbox RESET (
    fillfactor,
    autovacuum_vacuum_scale_factor,
    autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor,
    autovacuum_vacuum_insert_threshold,
    autovacuum_analyze_scale_factor,
    autovacuum_analyze_threshold,
    autovacuum_vacuum_cost_delay,
    autovacuum_vacuum_cost_limit
);
