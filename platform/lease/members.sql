-- Members of this group alive now: each holds one member-slot lock (second
-- key in [$2, $3)) for as long as its session lives.
SELECT count(*)
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid >= $2::bigint::oid AND objid < $3::bigint::oid
