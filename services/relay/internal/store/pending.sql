-- Rows waiting to be published, from the floor $1 on (see Floor).
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM {{table}}
WHERE id >= $1 AND NOT published AND parked_at IS NULL
