-- Where claims may start (see Floor): the lowest id waiting to be published
-- (retrying ones included), or the id after the highest if none is; and
-- the statement's snapshot: the oldest transaction still running and the
-- first transaction id not yet assigned. pg_current_snapshot() is the
-- snapshot the subqueries read with, so a row they cannot see belongs to a
-- transaction this snapshot counts as running or not yet begun.
SELECT coalesce((SELECT min(id) FROM {{table}} WHERE NOT published AND parked_at IS NULL),
                (SELECT max(id) + 1 FROM {{table}}),
                0)::bigint,
       pg_snapshot_xmin(pg_current_snapshot())::text,
       pg_snapshot_xmax(pg_current_snapshot())::text
