-- Replica $1 stops: its partitions go to the others, whose reports count.
DELETE FROM sink_replicas WHERE instance_id = $1
