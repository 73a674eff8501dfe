-- Write back the region states of one batch, one array per column.
INSERT INTO site_region_state (site_id, region, state, failures, passes, last_checked_at, error_class, error, degraded)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::int[], $6::timestamptz[], $7::text[], $8::text[], $9::bool[])
ON CONFLICT (site_id, region) DO UPDATE
SET state = excluded.state, failures = excluded.failures, passes = excluded.passes,
    last_checked_at = excluded.last_checked_at, error_class = excluded.error_class, error = excluded.error,
    degraded = excluded.degraded
