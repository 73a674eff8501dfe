-- One statement per batch. ON CONFLICT makes a re-delivered event (same
-- event_id) a no-op, which is what turns at-least-once into exactly-one-row.
INSERT INTO stats (event_id, site_id, url, checked_at, status_code, duration_ms,
                   regex, regex_matched, error_class, error,
                   topic_name, kafka_partition, kafka_offset,
                   schema_version, regexes, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms,
                   body_bytes, truncated, redirects, final_url, tls_expiry, tls_chain_expiry, remote_ip)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::float8[],
                     $7::text[], $8::bool[], $9::text[], $10::text[],
                     $11::text[], $12::int[], $13::bigint[],
                     $14::smallint[], $15::jsonb[], $16::float8[], $17::float8[], $18::float8[], $19::float8[], $20::float8[],
                     $21::bigint[], $22::bool[], $23::int[], $24::text[], $25::timestamptz[], $26::timestamptz[], $27::text[])
ON CONFLICT (event_id) DO NOTHING
