-- Taken alone by the fold that starts folding, until its transaction
-- ends: it waits for every writer holding lock_shared.sql to commit, and
-- they wait for it.
SELECT pg_advisory_xact_lock(hashtext('sitewatch.rollups.fold'))
