-- The snapshot's time, for the next "changed since", and every enabled id.
SELECT now(), coalesce(array_agg(id ORDER BY id), '{}') FROM sites WHERE enabled
