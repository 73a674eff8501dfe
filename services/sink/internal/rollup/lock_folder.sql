-- Taken alone by a fold until its transaction ends: one fold at a time,
-- whichever sink replica runs it.
SELECT pg_advisory_xact_lock(hashtext('sitewatch.rollups.folder'))
