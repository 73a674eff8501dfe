-- One statement per batch: $1 is a JSON array of rows whose keys are the
-- column names below (store.row). ON CONFLICT makes a re-delivered event
-- (same event_id) a no-op, which is what turns at-least-once into
-- exactly-one-row.
INSERT INTO stats (event_id, site_id, url, checked_at, status_code, duration_ms,
                   regex, regex_matched, error_class, error,
                   topic_name, kafka_partition, kafka_offset,
                   schema_version, regexes, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms,
                   body_bytes, truncated, redirects, final_url, tls_expiry, tls_chain_expiry, remote_ip, region)
SELECT event_id, site_id, url, checked_at, status_code, duration_ms,
       regex, regex_matched, error_class, error,
       topic_name, kafka_partition, kafka_offset,
       schema_version, regexes, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms,
       body_bytes, truncated, redirects, final_url, tls_expiry, tls_chain_expiry, remote_ip, region
FROM jsonb_to_recordset($1::jsonb) AS r(
    event_id uuid, site_id bigint, url text, checked_at timestamptz, status_code integer, duration_ms float8,
    regex text, regex_matched boolean, error_class text, error text,
    topic_name text, kafka_partition integer, kafka_offset bigint,
    schema_version smallint, regexes jsonb, dns_ms float8, connect_ms float8, tls_ms float8, ttfb_ms float8, transfer_ms float8,
    body_bytes bigint, truncated boolean, redirects integer, final_url text, tls_expiry timestamptz, tls_chain_expiry timestamptz,
    remote_ip text, region text)
ON CONFLICT (event_id) DO NOTHING
