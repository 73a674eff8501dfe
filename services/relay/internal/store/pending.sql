SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8
FROM {{table}}
WHERE NOT published AND parked_at IS NULL
