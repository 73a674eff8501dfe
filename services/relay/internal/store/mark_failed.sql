UPDATE {{table}} AS o
SET attempts = o.attempts + 1, last_error = f.err
FROM unnest($1::bigint[], $2::text[]) AS f(id, err)
WHERE o.id = f.id
