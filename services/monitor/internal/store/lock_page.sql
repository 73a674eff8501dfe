-- Locks page $1 for an update.
SELECT slug FROM status_pages WHERE slug = $1 FOR UPDATE
