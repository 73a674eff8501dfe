-- $1: only enabled sites; $2: only those changed after it (NULL: any time);
-- $3: only these ids (NULL: every id); $4: only sites this region checks
-- (NULL: any region); $5: only the sites the scheduler checks in these
-- shards (NULL: every site of every shard): heartbeat sites, which their
-- jobs report on (a token hash), are left out.
SELECT id, url, method, headers, expect_status, must_match, must_not_match,
       interval_ms, timeout_ms, topic_name, regions, enabled, updated_at,
       failure_threshold, success_threshold, coalesce(quorum, 0), tls_warning_days, name, send,
       conditions, coalesce(degraded_after_ms, 0)
FROM sites
WHERE (enabled OR NOT $1)
  AND ($2::timestamptz IS NULL OR updated_at > $2)
  AND ($3::bigint[] IS NULL OR id = ANY ($3))
  AND ($4::text IS NULL OR cardinality(regions) = 0 OR $4 = ANY (regions))
  AND ($5::smallint[] IS NULL OR (shard = ANY ($5) AND ping_token_hash IS NULL))
ORDER BY id
