-- Records a signal of site $1: $2 the new deadline's distance from now (ms),
-- $3 whether a run starts (/start) rather than ends (a ping or a failure).
UPDATE heartbeats h
SET deadline = now() + make_interval(secs => $2 / 1000.0),
    started_at = CASE WHEN $3 THEN now() END,
    last_ping_at = CASE WHEN $3 THEN h.last_ping_at ELSE now() END,
    site_version = greatest(h.site_version, s.updated_at)
FROM sites s
WHERE s.id = h.site_id AND h.site_id = $1
RETURNING now()
