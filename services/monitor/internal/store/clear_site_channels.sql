DELETE FROM site_channels WHERE site_id = $1
