-- The table's oid (keys its advisory locks), schema, name and notification
-- channel (as outbox_notify names it), resolved like any query would, and
-- its layout: partitioned (the partition functions of outbox.sql present
-- in the table's schema, where outbox.sql makes them) or the earlier
-- single table; and whether its outbox_drop looks the DEFAULT partition
-- through again under its lock (outbox.sql since migration 00032), without
-- which emptying that partition could take a row committed meanwhile; and
-- the fillfactor of the table or, if partitioned, of its newest range
-- partition, which the next partitions copy (PostgreSQL's 100 if unset).
SELECT c.oid::bigint, n.nspname, c.relname,
       CASE WHEN octet_length(n.nspname || '.' || c.relname) > 63 THEN 'outbox_' || md5(n.nspname || '.' || c.relname)
            ELSE n.nspname || '.' || c.relname END,
       c.relkind = 'p',
       to_regprocedure(quote_ident(n.nspname) || '.outbox_extend(regclass, bigint, integer)') IS NOT NULL
           AND to_regprocedure(quote_ident(n.nspname) || '.outbox_drop(regclass)') IS NOT NULL
           AND to_regprocedure(quote_ident(n.nspname) || '.outbox_partitions(regclass)') IS NOT NULL,
       coalesce((SELECT p.prosrc LIKE '%looked through again under the lock%' FROM pg_proc p
                 WHERE p.oid = to_regprocedure(quote_ident(n.nspname) || '.outbox_drop(regclass)')), false),
       coalesce((SELECT split_part(o, '=', 2)::integer
                 FROM pg_class f, unnest(f.reloptions) AS o
                 WHERE o LIKE 'fillfactor=%' AND f.oid = CASE WHEN c.relkind <> 'p' THEN c.oid ELSE (
                     SELECT p.oid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid
                     WHERE i.inhparent = c.oid
                     ORDER BY (regexp_match(pg_get_expr(p.relpartbound, p.oid), 'TO \(''(-?\d+)''\)'))[1]::bigint DESC NULLS LAST
                     LIMIT 1) END), 100)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::regclass
