INSERT INTO sites (url, method, headers, expect_status, must_match, must_not_match,
                   interval_ms, timeout_ms, topic_name, regions, enabled,
                   failure_threshold, success_threshold, quorum, tls_warning_days, name, send, grace_ms, conditions, degraded_after_ms, ping_token_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, nullif($14, 0), $15, $16, $17, $18, $19, nullif($20, 0), $21)
RETURNING id, updated_at
