-- Oldest unpublished rows first. SKIP LOCKED lets several relays share a
-- table without waiting on each other's batches.
SELECT id, event_id::text, topic_name, msg_key, payload, headers, created_at
FROM {{table}}
WHERE NOT published
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
