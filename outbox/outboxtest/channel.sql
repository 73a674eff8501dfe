-- The notification channel of table $1: "schema.table", as the notify
-- trigger names it.
SELECT n.nspname || '.' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::regclass
