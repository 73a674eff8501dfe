INSERT INTO {{table}} (event_id, topic_name, msg_key, payload, headers)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::jsonb[])
