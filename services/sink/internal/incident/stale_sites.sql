-- Enabled sites with no check from any region for 3 intervals, or for $1
-- seconds when that is longer (and older than that themselves, counting
-- from their last change) and no open stale incident. The floor covers a
-- new site's first check (the monitors pick up site changes on their
-- reload interval) and a shard's move to another monitor replica, so a
-- site checked every second is not called stale for a pause of seconds.
SELECT s.id, s.url
FROM sites s
CROSS JOIN LATERAL (SELECT greatest(3 * make_interval(secs => s.interval_ms / 1000.0), make_interval(secs => $1)) AS quiet) w
WHERE s.enabled
  AND greatest(s.created_at, s.updated_at) < now() - w.quiet
  AND coalesce((SELECT max(r.last_checked_at) FROM site_region_state r WHERE r.site_id = s.id), greatest(s.created_at, s.updated_at))
      < now() - w.quiet
  AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.site_id = s.id AND i.kind = 'stale' AND i.resolved_at IS NULL)
ORDER BY s.id
LIMIT 1000
