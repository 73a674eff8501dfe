-- The lowest waiting id in one partition, {{partition}} (its name as
-- outbox_partitions gives it): the DEFAULT partition, whose rows no id
-- range of the parent's singles out.
SELECT min(id) FROM {{partition}} WHERE NOT published AND parked_at IS NULL
