-- {{schema}} is the table's schema, where outbox.sql makes its functions.
-- Partitions of $2 ids created until $3 of them lie ahead of the writers.
SELECT {{schema}}.outbox_extend($1::regclass, $2, $3)
