-- The snapshot's time, for the next "changed since", and the id of every
-- enabled site that region $1 checks in shards $2 (not the heartbeat sites,
-- which their jobs report on): the sites_enabled_shard index answers it
-- without reading other replicas' sites.
SELECT now(), coalesce(array_agg(id ORDER BY id), '{}')
FROM sites
WHERE enabled AND shard = ANY ($2::smallint[])
  AND (cardinality(regions) = 0 OR $1 = ANY (regions))
  AND ping_token_hash IS NULL
