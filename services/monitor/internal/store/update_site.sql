-- updated_at is bumped by the sites_touch trigger.
UPDATE sites
SET url = $2, method = $3, headers = $4, expect_status = $5, must_match = $6, must_not_match = $7,
    interval_ms = $8, timeout_ms = $9, topic_name = $10, regions = $11, enabled = $12,
    failure_threshold = $13, success_threshold = $14, quorum = nullif($15, 0), tls_warning_days = $16, name = $17, send = $18, grace_ms = $19,
    conditions = $20, degraded_after_ms = nullif($21, 0)
WHERE id = $1
RETURNING updated_at
