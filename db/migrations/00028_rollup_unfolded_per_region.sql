-- +goose Up
-- rollup_unfolded(sites) read each site's regions one index probe at a
-- time, but then joined them to the unfolded minutes of every site: the
-- planner could not tell how few (site, region) pairs the recursive CTE
-- yields (it guesses 10,050), so it chose a merge join over every
-- unfolded minute of every site, sorted on disk. With 10,000 sites that
-- cost 170 ms for the 100 sites of a public status page
-- (BenchmarkPublicPage). Each pair now reads its own minutes through the
-- primary key (a LATERAL subquery kept apart from the join by OFFSET 0).
-- The same bad guess made a query reading it cost over 300,000, past
-- jit_above_cost: PostgreSQL then spent 18 ms compiling it for a 15 ms
-- query. The function is now PL/pgSQL, never inlined into its callers, so
-- they see its ROWS estimate; its own query runs without JIT, and its plan
-- is kept for the session rather than made at each call.
-- +goose StatementBegin
DROP FUNCTION rollup_unfolded(bigint[]);
CREATE FUNCTION rollup_unfolded(sites bigint[]) RETURNS SETOF rollups
LANGUAGE plpgsql STABLE ROWS 1000 SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH RECURSIVE regions AS (
        SELECT s.id AS site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = s.id) AS region
        FROM unnest(sites) AS s(id)
        UNION ALL
        SELECT g.site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = g.site_id AND region > g.region)
        FROM regions g WHERE g.region IS NOT NULL
    ), folded AS (
        SELECT folded_to FROM rollup_fold
    )
    SELECT r.* FROM regions g CROSS JOIN folded f
    CROSS JOIN LATERAL (
        SELECT * FROM rollups r
        WHERE r.bucket_width = 60 AND r.site_id = g.site_id AND r.region = g.region AND r.bucket_start >= f.folded_to
        OFFSET 0
    ) r
    WHERE g.region IS NOT NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DROP FUNCTION rollup_unfolded(bigint[]);
CREATE FUNCTION rollup_unfolded(sites bigint[]) RETURNS SETOF rollups
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE regions AS (
        SELECT s.id AS site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = s.id) AS region
        FROM unnest(sites) AS s(id)
        UNION ALL
        SELECT g.site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = g.site_id AND region > g.region)
        FROM regions g WHERE g.region IS NOT NULL
    )
    SELECT r.* FROM regions g
    JOIN rollups r ON r.bucket_width = 60 AND r.site_id = g.site_id AND r.region = g.region
    WHERE r.bucket_start >= (SELECT folded_to FROM rollup_fold)
$$;
-- +goose StatementEnd
