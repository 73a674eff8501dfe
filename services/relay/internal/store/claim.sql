-- The oldest publishable rows of the lanes this relay holds. A key with a
-- row waiting out its retry backoff is blocked entirely, so its later rows
-- cannot overtake it. No row is locked: the caller holds the lanes' batch
-- locks (lock_lanes.sql), taken before this statement. A payload
-- larger than $3 bytes (with its key) is not loaded: the row is parked.
-- NULLs in another team's table are read as empty, and the row parked.
-- Rows below $4, the Floor, are all published or parked: the index scan
-- starts there instead of stepping over every entry vacuum has not yet
-- removed; a worker's claims start higher, at its cursor. The last column
-- is the lowest id of a row of these lanes waiting out a retry backoff
-- (NULL if none): a worker's next claim must not start above it (see the
-- relay's cursor). $5 is the Floor itself: no row below it waits out a
-- backoff, so the two look-ups of such rows start there and, in a
-- partitioned table, leave out every partition below it at the
-- executor's start instead of reading each one's index. The lowest one
-- is the min() of a subquery (OFFSET 0 keeps it one): a min(r.id) straight
-- over the table may be planned as a walk up the primary key from $5
-- until a row in backoff turns up, which, as there rarely is one, read
-- every row above the floor on each claim.
WITH blocked AS (
    SELECT DISTINCT msg_key
    FROM {{table}}
    WHERE NOT published AND parked_at IS NULL AND next_attempt_at > now()
      AND msg_key IS NOT NULL AND lane = ANY($2::smallint[]) AND id >= $5
)
SELECT o.id, coalesce(o.event_id::text, ''), coalesce(o.topic_name, ''), o.msg_key,
       CASE WHEN octet_length(o.payload) + coalesce(octet_length(o.msg_key), 0) <= $3 THEN o.payload END,
       octet_length(o.payload) + coalesce(octet_length(o.msg_key), 0),
       coalesce(o.headers, '{}'::jsonb), coalesce(o.created_at, now()), coalesce(o.attempts, 0),
       (SELECT min(b.id) FROM (SELECT r.id FROM {{table}} AS r
                               WHERE r.next_attempt_at IS NOT NULL AND NOT r.published AND r.parked_at IS NULL
                                 AND r.lane = ANY($2::smallint[]) AND r.id >= $5
                               OFFSET 0) AS b)
FROM {{table}} AS o
WHERE NOT o.published AND o.parked_at IS NULL AND o.lane = ANY($2::smallint[]) AND o.id >= $4
  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
  AND (o.msg_key IS NULL OR o.msg_key NOT IN (SELECT msg_key FROM blocked))
ORDER BY o.id
LIMIT $1
