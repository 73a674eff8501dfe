-- One channel with its secret, locked until the update that follows.
SELECT c.name, c.kind, c.url, c.secret, c.is_default, (SELECT count(*) FROM site_channels s WHERE s.channel_id = c.id)
FROM channels c
WHERE c.name = $1
FOR UPDATE
