-- floor.sql for a partitioned table, which has no index of waiting rows
-- (an index on published would make every flip touch it): the primary
-- key is scanned from the current floor, $1, on. Rows below it are found
-- by the partition checks (see Store.Waiting) instead.
SELECT coalesce((SELECT min(id) FROM {{table}} WHERE id >= $1 AND NOT published AND parked_at IS NULL),
                (SELECT max(id) + 1 FROM {{table}}),
                0)::bigint,
       pg_snapshot_xmin(pg_current_snapshot())::text,
       pg_snapshot_xmax(pg_current_snapshot())::text
