-- $1: only enabled sites (the scheduler) or all of them (the CLI).
SELECT id, url, method, coalesce(regex, ''), interval_ms, timeout_ms, topic_name, enabled, updated_at
FROM sites
WHERE enabled OR NOT $1
ORDER BY id
