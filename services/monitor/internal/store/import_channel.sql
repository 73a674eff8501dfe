-- Adds a channel, or replaces the one of the same name; $6: keep the
-- secret it has. RETURNING: true when the channel is new.
INSERT INTO channels (name, kind, url, secret, is_default) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (name) DO UPDATE
SET kind = EXCLUDED.kind, url = EXCLUDED.url, is_default = EXCLUDED.is_default,
    secret = CASE WHEN $6 THEN channels.secret ELSE EXCLUDED.secret END
RETURNING xmax = 0
