DELETE FROM status_pages WHERE slug = $1
