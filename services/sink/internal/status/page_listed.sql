-- Whether site $1 is on a status page (its badges are public then).
SELECT EXISTS (SELECT FROM status_page_sites WHERE site_id = $1)
