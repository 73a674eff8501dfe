INSERT INTO channels (name, kind, url, secret, is_default) VALUES ($1, $2, $3, $4, $5) RETURNING id
