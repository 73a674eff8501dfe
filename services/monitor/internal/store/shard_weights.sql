-- The checks per second of each shard's enabled sites that region $1
-- checks (heartbeat sites aside: their jobs report in), for the region's
-- replicas to share the checks rather than the shards. One scan of the
-- sites, every few seconds per replica.
SELECT shard, sum(1000.0 / interval_ms)::float8
FROM sites
WHERE enabled AND ping_token_hash IS NULL AND (cardinality(regions) = 0 OR $1 = ANY (regions))
GROUP BY shard
