-- The notification channel of table $1 as the notify trigger names it:
-- "schema.table", or "outbox_" and its md5 when longer than 63 bytes.
SELECT CASE WHEN octet_length(n.nspname || '.' || c.relname) > 63 THEN 'outbox_' || md5(n.nspname || '.' || c.relname)
            ELSE n.nspname || '.' || c.relname END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::regclass
