-- The sites table's oid, resolved like every other query resolves it: the
-- namespace of the monitor replicas' shard leases.
SELECT 'sites'::regclass::oid::bigint
