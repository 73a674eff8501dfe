-- The named channels ($2) of a site; the caller removed the old ones first.
INSERT INTO site_channels (site_id, channel_id)
SELECT $1, id FROM channels WHERE name = ANY ($2::text[])
