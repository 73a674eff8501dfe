-- Status page $1: its title, announcement, whether it shows URLs, and its
-- sites in order with their groups.
SELECT p.title, p.announcement, p.show_urls,
       coalesce(array_agg(ps.site_id ORDER BY ps.position) FILTER (WHERE ps.site_id IS NOT NULL), '{}'),
       coalesce(array_agg(ps.grp ORDER BY ps.position) FILTER (WHERE ps.site_id IS NOT NULL), '{}')
FROM status_pages p
LEFT JOIN status_page_sites ps ON ps.slug = p.slug
WHERE p.slug = $1
GROUP BY p.slug
