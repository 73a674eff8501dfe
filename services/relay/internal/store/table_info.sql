-- The table's oid (keys its advisory locks), schema, name and notification
-- channel (as outbox_notify names it), resolved like any query would.
SELECT c.oid::bigint, n.nspname, c.relname,
       CASE WHEN octet_length(n.nspname || '.' || c.relname) > 63 THEN 'outbox_' || md5(n.nspname || '.' || c.relname)
            ELSE n.nspname || '.' || c.relname END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::regclass
