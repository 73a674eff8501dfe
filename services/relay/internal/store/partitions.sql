-- The table's partitions: name, first id (the lowest bigint for the first
-- partition of a converted table), the id after the last (NULL for the
-- DEFAULT partition).
SELECT part::text, coalesce(first_id, -9223372036854775808), end_id FROM outbox_partitions($1::regclass)
