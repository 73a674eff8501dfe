INSERT INTO sites (url, method, regex, interval_ms, timeout_ms, topic_name, enabled)
VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7)
RETURNING id, updated_at
