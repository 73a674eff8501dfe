-- $1: only enabled sites; $2: only those changed after it (NULL: any time);
-- $3: only these ids (NULL: every id).
SELECT id, url, method, headers, expect_status, must_match, must_not_match,
       interval_ms, timeout_ms, topic_name, enabled, updated_at
FROM sites
WHERE (enabled OR NOT $1)
  AND ($2::timestamptz IS NULL OR updated_at > $2)
  AND ($3::bigint[] IS NULL OR id = ANY ($3))
ORDER BY id
