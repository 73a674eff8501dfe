-- The enabled heartbeat site of token hash $1 and its row (created when
-- missing), locked until the ping is recorded. The site's columns are
-- those of list_sites.sql.
WITH s AS (
    SELECT * FROM sites WHERE ping_token_hash = $1 AND enabled
), made AS (
    INSERT INTO heartbeats (site_id, deadline, site_version)
    SELECT id, now() + make_interval(secs => (interval_ms + grace_ms) / 1000.0), updated_at FROM s
    ON CONFLICT (site_id) DO NOTHING
)
SELECT s.id, s.url, s.method, s.headers, s.expect_status, s.must_match, s.must_not_match,
       s.interval_ms, s.timeout_ms, s.topic_name, s.regions, s.enabled, s.updated_at,
       s.failure_threshold, s.success_threshold, coalesce(s.quorum, 0), s.tls_warning_days, s.name, s.send,
       s.conditions, coalesce(s.degraded_after_ms, 0),
       s.grace_ms
FROM s
