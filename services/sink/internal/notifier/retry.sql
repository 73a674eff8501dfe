-- A failed attempt: back off ($3 seconds doubling, at most $5 seconds),
-- or give up after $4 attempts, keeping the reason.
UPDATE deliveries
SET attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + make_interval(secs => least($3 * power(2, least(attempts, 30)), $5)),
    status = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'pending' END
WHERE id = $1
RETURNING status
