SELECT id, event_id::text, topic_name, coalesce(encode(msg_key, 'escape'), ''), attempts, parked_at, coalesce(last_error, '')
FROM {{table}}
WHERE parked_at IS NOT NULL
ORDER BY id
LIMIT $1
