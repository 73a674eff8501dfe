-- The highest id written (0 if none): how far writers have come, read
-- each partition round to measure their pace. Each partition's primary
-- key gives its highest id; the partitions ahead are empty.
SELECT coalesce(max(id), 0) FROM {{table}}
