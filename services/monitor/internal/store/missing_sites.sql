-- Which of the site IDs $1 do not exist.
SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM unnest($1::bigint[]) AS u(id)
WHERE NOT EXISTS (SELECT FROM sites s WHERE s.id = u.id)
