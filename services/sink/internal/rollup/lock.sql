-- Taken by Fold, alone, until its transaction ends: it waits for the
-- writers holding lock_shared.sql to commit, and they wait for it.
SELECT pg_advisory_xact_lock(hashtext('sitewatch.rollups.fold'))
