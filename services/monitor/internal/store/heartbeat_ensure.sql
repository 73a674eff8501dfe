-- Gives each enabled heartbeat site of shards $1 its row, and a fresh
-- deadline (its last change + interval + grace) to a site changed since
-- its row last followed it: re-enabled after a month, it is not called late
-- at once; given a longer interval, it waits for it.
INSERT INTO heartbeats AS h (site_id, deadline, site_version)
SELECT s.id, s.updated_at + make_interval(secs => (s.interval_ms + s.grace_ms) / 1000.0), s.updated_at
FROM sites s
LEFT JOIN heartbeats cur ON cur.site_id = s.id
WHERE s.enabled AND s.ping_token_hash IS NOT NULL AND s.shard = ANY ($1::smallint[])
  AND (cur.site_id IS NULL OR cur.site_version < s.updated_at)
ON CONFLICT (site_id) DO UPDATE
SET deadline = greatest(h.deadline, EXCLUDED.deadline), site_version = EXCLUDED.site_version
WHERE h.site_version < EXCLUDED.site_version
