-- The heartbeat sites of shards $1 past their deadline, locked: a ping
-- being recorded holds its row, and a ping that moved the deadline on
-- takes the row out of the result (the lock re-reads it). Another replica
-- sweeping the same shard (a lease moving) skips the rows this one holds.
-- The site's columns are those of list_sites.sql; now() is the checks' time.
SELECT s.id, s.url, s.method, s.headers, s.expect_status, s.must_match, s.must_not_match,
       s.interval_ms, s.timeout_ms, s.topic_name, s.regions, s.enabled, s.updated_at,
       s.failure_threshold, s.success_threshold, coalesce(s.quorum, 0), s.tls_warning_days, s.name, s.send,
       s.conditions, coalesce(s.degraded_after_ms, 0),
       h.deadline, h.started_at, h.last_ping_at, now()
FROM heartbeats h
JOIN sites s ON s.id = h.site_id
WHERE h.deadline <= now() AND s.enabled AND s.ping_token_hash IS NOT NULL AND s.shard = ANY ($1::smallint[])
ORDER BY h.deadline
LIMIT 1000
FOR UPDATE OF h SKIP LOCKED
