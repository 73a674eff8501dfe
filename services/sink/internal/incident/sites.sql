-- The settings of the sites $1 that decide their state.
SELECT id, url, enabled, interval_ms, failure_threshold, success_threshold, coalesce(quorum, 0), tls_warning_days, regions
FROM sites
WHERE id = ANY ($1::bigint[])
