-- Enabled sites with no check from any region for 3 intervals (and older
-- than that themselves, counting from their last change) and no open stale
-- incident.
SELECT s.id, s.url
FROM sites s
WHERE s.enabled
  AND greatest(s.created_at, s.updated_at) < now() - 3 * make_interval(secs => s.interval_ms / 1000.0)
  AND coalesce((SELECT max(r.last_checked_at) FROM site_region_state r WHERE r.site_id = s.id), greatest(s.created_at, s.updated_at))
      < now() - 3 * make_interval(secs => s.interval_ms / 1000.0)
  AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.site_id = s.id AND i.kind = 'stale' AND i.resolved_at IS NULL)
ORDER BY s.id
LIMIT 1000
