-- Adds sites $2 to page $1 (cleared first: clear_page_sites.sql), in that
-- order, each in the group of the same place in $3. A site that does not
-- exist is left out.
INSERT INTO status_page_sites (slug, site_id, grp, position)
SELECT $1, u.site, u.grp, u.pos
FROM unnest($2::bigint[], $3::text[]) WITH ORDINALITY AS u(site, grp, pos)
JOIN sites s ON s.id = u.site
