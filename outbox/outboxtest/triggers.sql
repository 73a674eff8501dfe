-- The user triggers of table $1: when they fire (pg_trigger.tgtype) and
-- the function they call.
SELECT t.tgtype::int, p.proname::text
FROM pg_trigger t
JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal
ORDER BY 1, 2
