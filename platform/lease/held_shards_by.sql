-- Shards of this group leased by any member, and the backend pid holding
-- each: second keys in [$2, $3) under the group's first key $1.
SELECT objid::bigint - $2, pid
FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = $1::bigint::oid AND objid >= $2::bigint::oid AND objid < $3::bigint::oid
