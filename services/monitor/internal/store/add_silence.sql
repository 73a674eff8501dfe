INSERT INTO silences (site_id, until, reason) VALUES ($1, $2, $3) RETURNING id
