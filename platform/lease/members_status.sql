-- Each member of the group alive now (its member-slot lock: second key in
-- [$4, $5) under the group's first key $1), what pg_stat_activity says of
-- its lease connection (a role that is neither the member's nor granted
-- pg_read_all_stats sees NULLs there), and the shards it holds (second
-- keys in [$2, $3), less $2).
SELECT m.pid,
       coalesce(a.application_name, ''),
       coalesce(host(a.client_addr), CASE WHEN a.pid IS NOT NULL AND a.client_addr IS NULL THEN 'local' ELSE '' END),
       a.backend_start,
       array(SELECT s.objid::bigint - $2 FROM pg_locks s
             WHERE s.locktype = 'advisory' AND s.granted AND s.objsubid = 2 AND s.pid = m.pid
               AND s.database = m.database AND s.classid = m.classid
               AND s.objid >= $2::bigint::oid AND s.objid < $3::bigint::oid
             ORDER BY 1)
FROM pg_locks m LEFT JOIN pg_stat_activity a ON a.pid = m.pid
WHERE m.locktype = 'advisory' AND m.granted AND m.objsubid = 2
  AND m.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND m.classid = $1::bigint::oid AND m.objid >= $4::bigint::oid AND m.objid < $5::bigint::oid
ORDER BY m.pid
