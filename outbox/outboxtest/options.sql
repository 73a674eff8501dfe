-- The storage parameters of table $1 (fillfactor, autovacuum_*), sorted.
SELECT coalesce(array_agg(o ORDER BY o), '{}')::text[] FROM pg_class c, unnest(c.reloptions) AS o
WHERE c.oid = $1::regclass
