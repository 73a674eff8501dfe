-- One delivery per channel of the incident's site: its own channels, or
-- the default channels when it names none. A re-delivered event records
-- nothing new.
INSERT INTO deliveries (event_id, channel_id, event_type, payload)
SELECT $1::uuid, c.id, $2, $3::jsonb
FROM channels c
WHERE c.id IN (SELECT channel_id FROM site_channels WHERE site_id = $4)
   OR (c.is_default AND NOT EXISTS (SELECT 1 FROM site_channels WHERE site_id = $4))
ON CONFLICT (event_id, channel_id) DO NOTHING
