-- Deliveries, newest first: $1 status (NULL: any), $2 channel name (NULL:
-- any), $3 at most this many.
SELECT d.id, d.created_at, c.name, d.event_type, coalesce((d.payload->>'site_id')::bigint, 0), coalesce(d.payload->>'url', ''),
       d.status, d.attempts, coalesce(d.last_error, '')
FROM deliveries d
JOIN channels c ON c.id = d.channel_id
WHERE ($1::text IS NULL OR d.status = $1) AND ($2::text IS NULL OR c.name = $2)
ORDER BY d.id DESC
LIMIT $3
