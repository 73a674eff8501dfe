-- The highest id in one partition, {{partition}} (its name as
-- outbox_partitions gives it): the DEFAULT partition, whose rows no id
-- range of the parent's singles out.
SELECT max(id) FROM {{partition}}
