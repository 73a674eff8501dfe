-- Adds page $1, or replaces the one of that slug. RETURNING: true when the
-- page is new.
INSERT INTO status_pages (slug, title, announcement, show_urls) VALUES ($1, $2, $3, $4)
ON CONFLICT (slug) DO UPDATE
SET title = EXCLUDED.title, announcement = EXCLUDED.announcement, show_urls = EXCLUDED.show_urls, updated_at = now()
RETURNING xmax = 0
