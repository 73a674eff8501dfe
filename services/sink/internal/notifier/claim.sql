-- Due deliveries, locked for this transaction; other notifiers skip them.
-- Per channel and site only the oldest pending one: a site's
-- notifications reach a channel in order (opened before resolved), and
-- one waiting out its backoff holds back only its own site's later ones.
-- A site under a silence gets nothing until it ends.
SELECT d.id, d.event_id::text, d.event_type, d.payload::text, d.attempts, c.name, c.kind, c.url, c.secret
FROM deliveries d
JOIN channels c ON c.id = d.channel_id
WHERE d.status = 'pending' AND d.next_attempt_at <= now()
  AND NOT EXISTS (
      SELECT 1 FROM deliveries e
      WHERE e.status = 'pending' AND e.channel_id = d.channel_id AND e.id < d.id
        AND e.payload->>'site_id' = d.payload->>'site_id')
  AND NOT EXISTS (
      SELECT 1 FROM silences s
      WHERE s.site_id = (d.payload->>'site_id')::bigint AND now() >= s.starts_at AND now() < s.until)
ORDER BY d.next_attempt_at
LIMIT $1
FOR UPDATE OF d SKIP LOCKED
