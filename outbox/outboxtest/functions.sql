-- The partition functions of outbox.sql in table $1's schema, where
-- outbox.sql makes them and the relay calls them: each one's signature
-- and an md5 of its body.
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', md5(p.prosrc)
FROM pg_proc p JOIN pg_class c ON c.relnamespace = p.pronamespace
WHERE c.oid = $1::regclass AND p.proname IN ('outbox_partitions', 'outbox_extend', 'outbox_drop', 'outbox_partition')
ORDER BY 1
