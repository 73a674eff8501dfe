-- The storage parameters (fillfactor, autovacuum_*) of table $1, sorted;
-- of a partitioned table, those of its newest range partition, which the
-- next partitions copy (outbox_extend); and whether it is partitioned.
SELECT coalesce((SELECT array_agg(o ORDER BY o) FROM unnest(c.reloptions) AS o), '{}')::text[], t.relkind = 'p'
FROM pg_class t
JOIN pg_class c ON c.oid = CASE WHEN t.relkind <> 'p' THEN t.oid ELSE (
    SELECT p.oid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
    WHERE i.inhparent = t.oid
    ORDER BY (regexp_match(pg_get_expr(p.relpartbound, p.oid), 'TO \(''(-?\d+)''\)'))[1]::bigint DESC NULLS LAST
    LIMIT 1) END
WHERE t.oid = $1::regclass
