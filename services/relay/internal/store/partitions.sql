-- {{schema}} is the table's schema, where outbox.sql makes its functions.
-- The table's partitions: name, first id (the lowest bigint for the first
-- partition of a converted table), the id after the last (NULL for the
-- DEFAULT partition).
SELECT part::text, coalesce(first_id, -9223372036854775808), end_id FROM {{schema}}.outbox_partitions($1::regclass)
