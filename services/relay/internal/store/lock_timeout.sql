-- How long a partition's DDL waits for a lock in this transaction ($1, as
-- "2000ms"); writers queue behind a lock request that waits.
SELECT set_config('lock_timeout', $1, true)
