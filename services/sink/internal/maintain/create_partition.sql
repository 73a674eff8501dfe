-- The partition of stats for one UTC day ($1), if missing; true when made.
SELECT stats_partition_create($1::date)
