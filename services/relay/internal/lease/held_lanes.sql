-- Lanes of this table leased by any relay, this one included.
SELECT objid::bigint
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid < $2::bigint::oid
