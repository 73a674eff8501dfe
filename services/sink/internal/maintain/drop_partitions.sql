-- Drops the stats partitions of the days before $1; returns their names.
SELECT stats_partitions_drop($1::date)
