-- One sink replica sweeps at a time (released at commit).
SELECT pg_try_advisory_xact_lock(hashtext('sitewatch.incidents.sweep'))
