-- Rows that must never be produced (e.g. a topic outside the source's
-- patterns): parked at once with the reason.
UPDATE {{table}}
SET parked_at = now(), last_error = $2
WHERE id = ANY($1::bigint[])
