-- The channels, $1: only this one by name (NULL: all). The secret is read
-- only to send with it; list and show print whether there is one.
SELECT c.name, c.kind, c.url, c.secret, c.is_default, (SELECT count(*) FROM site_channels s WHERE s.channel_id = c.id)
FROM channels c
WHERE $1::text IS NULL OR c.name = $1
ORDER BY c.name
