-- The table's oid (keys its advisory locks) and schema (names its
-- notification channel), resolved like any query would resolve it.
SELECT c.oid::bigint, n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::regclass
