-- Partitions of $2 ids created until $3 of them lie ahead of the writers.
SELECT outbox_extend($1::regclass, $2, $3)
