-- requeue.sql for a partitioned table: parked rows are written again
-- (new ids, the same event ids) instead of reset in place, so they land
-- above the floor, in the newest partition, and their old partition can
-- be dropped; $2 = requeue every parked row.
WITH moved AS (
    DELETE FROM {{table}}
    WHERE parked_at IS NOT NULL AND (id = ANY($1::bigint[]) OR $2)
    RETURNING id, event_id, topic_name, msg_key, payload, headers, created_at
)
INSERT INTO {{table}} (event_id, topic_name, msg_key, payload, headers, created_at)
SELECT event_id, topic_name, msg_key, payload, headers, created_at FROM moved ORDER BY id
