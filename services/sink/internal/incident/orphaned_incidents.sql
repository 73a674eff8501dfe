-- Open incidents of sites removed or disabled since.
SELECT i.id, CASE WHEN s.id IS NULL THEN 'removed' ELSE 'disabled' END
FROM incidents i
LEFT JOIN sites s ON s.id = i.site_id
WHERE i.resolved_at IS NULL AND (s.id IS NULL OR NOT s.enabled)
ORDER BY i.id
LIMIT 1000
