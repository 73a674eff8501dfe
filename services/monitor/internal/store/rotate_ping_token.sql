-- Replaces the ping token hash of site $1 with $2 if it is a heartbeat
-- site; says whether it is (no row: no such site).
WITH cur AS (SELECT id, ping_token_hash IS NOT NULL AS heartbeat FROM sites WHERE id = $1 FOR UPDATE),
     upd AS (UPDATE sites s SET ping_token_hash = $2 FROM cur WHERE s.id = cur.id AND cur.heartbeat)
SELECT heartbeat FROM cur
