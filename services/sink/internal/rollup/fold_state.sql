-- Where folding stands ($1: now): the first minute not folded yet (NULL:
-- not started); the newest 1-minute bucket from that minute up to $1 (when
-- not started: the newest of all, however far ahead); and the sink
-- replicas reporting that they do not fold (a version before folding),
-- which keep it from starting.
SELECT f.folded_to,
       (SELECT max(bucket_start) FROM rollups
        WHERE bucket_width = 60 AND bucket_start >= coalesce(f.folded_to, '-infinity')
          AND (f.folded_to IS NULL OR bucket_start <= $1)),
       ARRAY(SELECT instance_id FROM sink_replicas WHERE NOT folds ORDER BY instance_id)
FROM rollup_fold f
