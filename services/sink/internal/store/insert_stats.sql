-- One statement per batch. ON CONFLICT makes a re-delivered event (same
-- event_id) a no-op, which is what turns at-least-once into exactly-one-row.
INSERT INTO stats (event_id, site_id, url, checked_at, status_code, duration_ms,
                   regex, regex_matched, error_class, error,
                   topic_name, kafka_partition, kafka_offset)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::float8[],
                     $7::text[], $8::bool[], $9::text[], $10::text[],
                     $11::text[], $12::int[], $13::bigint[])
ON CONFLICT (event_id) DO NOTHING
