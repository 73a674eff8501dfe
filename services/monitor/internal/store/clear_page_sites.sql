DELETE FROM status_page_sites WHERE slug = $1
