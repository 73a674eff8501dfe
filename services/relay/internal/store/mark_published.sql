UPDATE {{table}}
SET published = true, published_at = now(), attempts = attempts + 1,
    last_error = NULL, next_attempt_at = NULL
WHERE id = ANY($1::bigint[])
