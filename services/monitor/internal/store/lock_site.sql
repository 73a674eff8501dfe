SELECT id, url, method, headers, expect_status, must_match, must_not_match,
       interval_ms, timeout_ms, topic_name, regions, enabled, updated_at,
       failure_threshold, success_threshold, coalesce(quorum, 0), tls_warning_days, name, send,
       conditions, coalesce(degraded_after_ms, 0)
FROM sites
WHERE id = $1
FOR UPDATE
