-- Kafka refused these rows: retry after an exponential backoff
-- ($3 seconds doubling, at most $4), park after $5 attempts.
UPDATE {{table}} AS o
SET attempts = o.attempts + 1,
    last_error = f.err,
    next_attempt_at = now() + make_interval(secs => least($3 * power(2, least(o.attempts, 30)), $4)),
    parked_at = CASE WHEN o.attempts + 1 >= $5 THEN now() END
FROM unnest($1::bigint[], $2::text[]) AS f(id, err)
WHERE o.id = f.id
RETURNING o.id, o.parked_at IS NOT NULL
