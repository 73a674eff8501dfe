-- The lowest waiting id in the DEFAULT partition ({{outside}}: see
-- default_top.sql).
SELECT min(id) FROM {{table}} WHERE ({{outside}}) AND NOT published AND parked_at IS NULL
