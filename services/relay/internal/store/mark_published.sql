-- $2 and $3 are the lowest and highest of the ids: in a partitioned table
-- they leave out, at the executor's start, every partition but theirs.
UPDATE {{table}}
SET published = true, published_at = now(), attempts = attempts + 1,
    last_error = NULL, next_attempt_at = NULL
WHERE id = ANY($1::bigint[]) AND id BETWEEN $2 AND $3
