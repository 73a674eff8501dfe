SELECT id, url, method, headers, expect_status, must_match, must_not_match,
       interval_ms, timeout_ms, topic_name, regions, enabled, updated_at
FROM sites
WHERE id = $1
FOR UPDATE
