-- The lowest waiting id from $1 up to $2 (one partition's ids, pruned to
-- it): rows below the floor, which claims would never reach.
SELECT min(id) FROM {{table}} WHERE id >= $1 AND id < $2 AND NOT published AND parked_at IS NULL
