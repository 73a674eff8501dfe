-- Each leaf of the table (the table itself if it is not partitioned, of
-- which pg_partition_tree says nothing): its name as the partition
-- functions name it, the rows the planner estimates it holds (-1 before
-- its first vacuum or analyze) and its size on disk, indexes and TOAST
-- included.
SELECT c.oid::regclass::text, c.reltuples::bigint, pg_total_relation_size(c.oid)
FROM pg_class AS c
WHERE c.oid IN (SELECT t.relid FROM pg_partition_tree($1::regclass) AS t WHERE t.isleaf)
   OR c.oid = $1::regclass AND c.relkind = 'r' AND NOT c.relispartition
