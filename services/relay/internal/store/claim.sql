-- The oldest publishable rows of the lanes this relay holds. A key with a
-- row waiting out its retry backoff is blocked entirely, so its later rows
-- cannot overtake it. FOR UPDATE without SKIP LOCKED: should two relays
-- ever hold a lane at once (a lease lost mid-batch), the second waits for
-- the first to commit instead of publishing past its rows.
WITH blocked AS (
    SELECT DISTINCT msg_key
    FROM {{table}}
    WHERE NOT published AND parked_at IS NULL AND next_attempt_at > now()
      AND msg_key IS NOT NULL AND lane = ANY($2::smallint[])
)
SELECT o.id, o.event_id::text, o.topic_name, o.msg_key, o.payload, o.headers, o.created_at, o.attempts
FROM {{table}} AS o
WHERE NOT o.published AND o.parked_at IS NULL AND o.lane = ANY($2::smallint[])
  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
  AND (o.msg_key IS NULL OR o.msg_key NOT IN (SELECT msg_key FROM blocked))
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o
