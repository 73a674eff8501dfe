-- Write back the sites' overall states; since moves only with the state.
INSERT INTO site_state AS s (site_id, state, since)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[])
ON CONFLICT (site_id) DO UPDATE
SET since = CASE WHEN s.state = excluded.state THEN s.since ELSE excluded.since END,
    state = excluded.state, updated_at = now()
