-- Taken by every transaction adding checks to rollups, shared, until it
-- ends; only starting to fold takes it alone (lock.sql). The key is the
-- sink's own.
SELECT pg_advisory_xact_lock_shared(hashtext('sitewatch.rollups.fold'))
