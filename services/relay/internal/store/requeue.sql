-- Parked rows get a fresh set of attempts; $2 = requeue every parked row.
UPDATE {{table}}
SET parked_at = NULL, attempts = 0, next_attempt_at = NULL
WHERE parked_at IS NOT NULL AND (id = ANY($1::bigint[]) OR $2)
