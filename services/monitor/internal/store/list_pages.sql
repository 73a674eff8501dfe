-- The status pages, or the one of slug $1 (NULL: every page), each with
-- its sites in order and their groups.
SELECT p.slug, p.title, p.announcement, p.show_urls, p.updated_at,
       coalesce(array_agg(ps.site_id ORDER BY ps.position) FILTER (WHERE ps.site_id IS NOT NULL), '{}'),
       coalesce(array_agg(ps.grp ORDER BY ps.position) FILTER (WHERE ps.site_id IS NOT NULL), '{}')
FROM status_pages p
LEFT JOIN status_page_sites ps ON ps.slug = p.slug
WHERE $1::text IS NULL OR p.slug = $1
GROUP BY p.slug
ORDER BY p.slug
