INSERT INTO sites (url, method, headers, expect_status, must_match, must_not_match,
                   interval_ms, timeout_ms, topic_name, regions, enabled)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id, updated_at
