SELECT coalesce(array_agg(c.name ORDER BY c.name), '{}')
FROM site_channels s JOIN channels c ON c.id = s.channel_id
WHERE s.site_id = $1
