-- A channel's deliveries by status, and its latest failure for good.
SELECT count(*) FILTER (WHERE d.status = 'pending'),
       count(*) FILTER (WHERE d.status = 'delivered'),
       count(*) FILTER (WHERE d.status = 'failed'),
       count(*) FILTER (WHERE d.status = 'silenced'),
       (SELECT f.created_at FROM deliveries f WHERE f.channel_id = c.id AND f.status = 'failed' ORDER BY f.id DESC LIMIT 1),
       (SELECT coalesce(f.last_error, '') FROM deliveries f WHERE f.channel_id = c.id AND f.status = 'failed' ORDER BY f.id DESC LIMIT 1)
FROM channels c
LEFT JOIN deliveries d ON d.channel_id = c.id
WHERE c.name = $1
GROUP BY c.id
