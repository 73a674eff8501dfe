-- Failed deliveries sent again at once with a fresh count of attempts:
-- those with ids $1, or with $2 every failed one (of channel $3 when not
-- NULL). The reason of the last failure stays until the next attempt.
UPDATE deliveries d
SET status = 'pending', attempts = 0, next_attempt_at = now()
FROM channels c
WHERE c.id = d.channel_id AND d.status = 'failed'
  AND (d.id = ANY($1::bigint[]) OR $2)
  AND ($3::text IS NULL OR c.name = $3)
RETURNING d.id
