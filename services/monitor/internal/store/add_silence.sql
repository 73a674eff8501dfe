INSERT INTO silences (site_id, starts_at, until, reason) VALUES ($1, $2, $3, $4) RETURNING id
