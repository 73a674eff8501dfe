-- Notifications of incidents opened and resolved within a silence that
-- has ended are never sent: nobody needs to hear of them.
UPDATE deliveries d SET status = 'silenced'
FROM incidents i, silences s
WHERE d.status = 'pending'
  AND i.id = (d.payload->>'incident_id')::bigint
  AND s.site_id = i.site_id AND s.until <= now()
  AND i.opened_at >= s.starts_at AND i.resolved_at IS NOT NULL AND i.resolved_at < s.until
