-- Records what replica $1 says of its partitions ($2: read up to their
-- recent ends, $3 messages left) and returns whether every replica that
-- reported within the last $4 seconds is caught up, with the ids of those
-- that are not. Reports ten times older than that are deleted. folds: this
-- version folds rollups (package rollup; a replica whose row says false
-- keeps folding from starting).
WITH me AS (
    INSERT INTO sink_replicas AS r (instance_id, caught_up, behind, reported_at, folds) VALUES ($1, $2, $3, now(), true)
    ON CONFLICT (instance_id) DO UPDATE SET caught_up = excluded.caught_up, behind = excluded.behind,
        reported_at = excluded.reported_at, folds = true
    RETURNING caught_up
), gone AS (
    DELETE FROM sink_replicas WHERE instance_id <> $1 AND reported_at < now() - make_interval(secs => 10 * $4::float8)
)
SELECT (SELECT caught_up FROM me) AND count(*) = 0, coalesce(array_agg(instance_id ORDER BY instance_id), '{}')
FROM sink_replicas
WHERE instance_id <> $1 AND NOT caught_up AND reported_at >= now() - make_interval(secs => $4::float8)
