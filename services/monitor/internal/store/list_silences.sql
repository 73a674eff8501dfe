-- Silences not over yet, soonest end first.
SELECT s.id, s.site_id, coalesce(st.url, ''), s.starts_at, s.until, s.reason
FROM silences s LEFT JOIN sites st ON st.id = s.site_id
WHERE s.until > now()
ORDER BY s.until, s.id
