-- The backend pid of each member of this group alive now (second key of
-- its member-slot lock in [$2, $3)).
SELECT pid
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid >= $2::bigint::oid AND objid < $3::bigint::oid
ORDER BY pid
