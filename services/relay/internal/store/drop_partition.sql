-- {{schema}} is the table's schema, where outbox.sql makes its functions.
-- Drops (or, for the DEFAULT partition, empties) partition $1 unless a row
-- in it waits: then its lowest id. The caller's lock_timeout bounds the
-- wait for the partition's and the parent's locks.
SELECT {{schema}}.outbox_drop($1::regclass)
