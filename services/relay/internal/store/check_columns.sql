-- Fails unless the table has every column the relay reads or writes.
SELECT id, event_id, topic_name, msg_key, payload, headers, created_at, published, published_at,
       attempts, last_error, lane, next_attempt_at, parked_at
FROM {{table}}
LIMIT 0
