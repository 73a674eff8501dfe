-- The highest id in the DEFAULT partition: {{outside}} holds the ids no
-- range takes, which prunes every other partition (and, read through the
-- table, needs no privilege on the partition itself).
SELECT max(id) FROM {{table}} WHERE {{outside}}
