-- Takes, shared and in ascending order (a fold takes them alone in the same
-- order: no deadlock), the locks of the fold slots $1 (rollup.FoldSlot
-- numbers, repeats allowed), until the transaction ends. A slot's key is
-- the sink's own in the high 32 bits and the slot in the low ones.
SELECT count(pg_advisory_xact_lock_shared((hashtext('sitewatch.rollups.fold.slot')::bigint << 32) + s))
FROM (SELECT DISTINCT s FROM unnest($1::bigint[]) AS s ORDER BY s) AS o
