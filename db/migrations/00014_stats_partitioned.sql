-- +goose Up
-- Issue 9: stats partitioned by day (checked_at, UTC), so raw rows expire a
-- partition at a time (DROP TABLE: no bulk DELETE, no bloat).
--
-- Dedupe: a unique key on a partitioned table must include the partition
-- column, so the key is (event_id, checked_at). That is still "one row per
-- event": an event is immutable and its checked_at is part of it, so every
-- delivery of an event carries the same checked_at and lands on the same
-- key. We chose this over a separate stats_seen(event_id) table because it
-- costs nothing extra per insert (one index, one statement) and expires with
-- its partition; the price is that a replay of an event older than the raw
-- retention is stored again (in stats_default, trimmed by the sink), which is
-- harmless because the rollups it would count are long merged and the replay
-- is an operator's deliberate act.
--
-- A check outside every daily partition (a skewed clock, a replay) lands in
-- stats_default and never fails the batch; the sink's maintenance moves such
-- rows into their day's partition when it creates it.
ALTER TABLE stats RENAME TO stats_unpartitioned;
ALTER TABLE stats_unpartitioned RENAME CONSTRAINT stats_pkey TO stats_unpartitioned_pkey;
ALTER TABLE stats_unpartitioned RENAME CONSTRAINT stats_event_id_key TO stats_unpartitioned_event_id_key;
ALTER INDEX stats_site_checked RENAME TO stats_unpartitioned_site_checked;
ALTER SEQUENCE stats_id_seq RENAME TO stats_unpartitioned_id_seq;

-- PostgreSQL 15 has no identity columns on partitioned tables: a sequence.
CREATE SEQUENCE stats_id_seq AS bigint;
CREATE TABLE stats (
    id               bigint      NOT NULL DEFAULT nextval('stats_id_seq'),
    event_id         uuid        NOT NULL,
    site_id          bigint      NOT NULL,
    url              text        NOT NULL,
    checked_at       timestamptz NOT NULL,
    status_code      integer,
    duration_ms      double precision NOT NULL,
    regex            text,
    regex_matched    boolean,
    error_class      text,
    error            text,
    topic_name       text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    schema_version   smallint,
    regexes          jsonb,
    dns_ms           double precision,
    connect_ms       double precision,
    tls_ms           double precision,
    ttfb_ms          double precision,
    transfer_ms      double precision,
    body_bytes       bigint,
    truncated        boolean,
    redirects        integer,
    final_url        text,
    tls_expiry       timestamptz,
    tls_chain_expiry timestamptz,
    remote_ip        text,
    region           text,
    CONSTRAINT stats_pkey PRIMARY KEY (event_id, checked_at)
) PARTITION BY RANGE (checked_at);
ALTER SEQUENCE stats_id_seq OWNED BY stats.id;
CREATE INDEX stats_site_checked ON stats (site_id, checked_at);
CREATE TABLE stats_default PARTITION OF stats DEFAULT;

-- stats_partition_create makes the partition of one UTC day, moving into it
-- the rows stats_default caught for that day, and reports whether it was
-- new. SECURITY DEFINER: the sink's role may add and drop partitions
-- without owning stats (db/grants.sql grants it EXECUTE; PUBLIC may not).
-- +goose StatementBegin
CREATE FUNCTION stats_partition_create(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    part text := 'stats_' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    -- Sink replicas maintain at once: one at a time, the others find it done.
    PERFORM pg_advisory_xact_lock(hashtext('sitewatch.stats_partitions'));
    IF EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'stats'::regclass AND c.relname = part) THEN
        RETURN false;
    END IF;
    -- Rows for this day arriving in the default partition meanwhile would
    -- make ATTACH fail: hold them off until the commit.
    LOCK TABLE stats_default IN EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE stats INCLUDING DEFAULTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM stats_default WHERE checked_at >= $1 AND checked_at < $2 RETURNING *)
                    INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE stats ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- stats_partitions_drop drops the daily partitions of the days before
-- `before` and deletes the default partition's rows older than it; it
-- returns the partitions dropped.
-- +goose StatementBegin
CREATE FUNCTION stats_partitions_drop(before date) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    part text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('sitewatch.stats_partitions'));
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'stats'::regclass AND c.relname ~ '^stats_[0-9]{8}$'
          AND to_date(substr(c.relname, 7), 'YYYYMMDD') < before
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
    DELETE FROM stats_default WHERE checked_at < before::timestamp AT TIME ZONE 'UTC';
END
$$;
-- +goose StatementEnd

-- Functions are executable by PUBLIC by default; these drop data.
REVOKE EXECUTE ON FUNCTION stats_partition_create(date), stats_partitions_drop(date) FROM PUBLIC;

-- Existing rows: a partition for every day that has some, then the copy.
SELECT stats_partition_create(d::date)
FROM generate_series((SELECT min(checked_at) AT TIME ZONE 'UTC' FROM stats_unpartitioned)::date::timestamp,
                     (SELECT max(checked_at) AT TIME ZONE 'UTC' FROM stats_unpartitioned)::date::timestamp,
                     interval '1 day') AS d;
INSERT INTO stats SELECT id, event_id, site_id, url, checked_at, status_code, duration_ms, regex, regex_matched,
    error_class, error, topic_name, kafka_partition, kafka_offset, inserted_at, schema_version, regexes, dns_ms,
    connect_ms, tls_ms, ttfb_ms, transfer_ms, body_bytes, truncated, redirects, final_url, tls_expiry,
    tls_chain_expiry, remote_ip, region
FROM stats_unpartitioned;
SELECT setval('stats_id_seq', coalesce(max(id), 0) + 1, false) FROM stats_unpartitioned;
DROP TABLE stats_unpartitioned;

-- +goose Down
ALTER TABLE stats RENAME TO stats_partitioned;
ALTER TABLE stats_partitioned RENAME CONSTRAINT stats_pkey TO stats_partitioned_pkey;
ALTER INDEX stats_site_checked RENAME TO stats_partitioned_site_checked;
ALTER SEQUENCE stats_id_seq RENAME TO stats_partitioned_id_seq;
CREATE TABLE stats (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid        NOT NULL UNIQUE,
    site_id          bigint      NOT NULL,
    url              text        NOT NULL,
    checked_at       timestamptz NOT NULL,
    status_code      integer,
    duration_ms      double precision NOT NULL,
    regex            text,
    regex_matched    boolean,
    error_class      text,
    error            text,
    topic_name       text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    schema_version   smallint,
    regexes          jsonb,
    dns_ms           double precision,
    connect_ms       double precision,
    tls_ms           double precision,
    ttfb_ms          double precision,
    transfer_ms      double precision,
    body_bytes       bigint,
    truncated        boolean,
    redirects        integer,
    final_url        text,
    tls_expiry       timestamptz,
    tls_chain_expiry timestamptz,
    remote_ip        text,
    region           text
);
-- A replay older than the raw retention may be stored twice (see Up): keep one.
INSERT INTO stats OVERRIDING SYSTEM VALUE
SELECT DISTINCT ON (event_id) id, event_id, site_id, url, checked_at, status_code, duration_ms, regex, regex_matched,
    error_class, error, topic_name, kafka_partition, kafka_offset, inserted_at, schema_version, regexes, dns_ms,
    connect_ms, tls_ms, ttfb_ms, transfer_ms, body_bytes, truncated, redirects, final_url, tls_expiry,
    tls_chain_expiry, remote_ip, region
FROM stats_partitioned ORDER BY event_id, id;
SELECT setval(pg_get_serial_sequence('stats', 'id'), coalesce(max(id), 0) + 1, false) FROM stats;
CREATE INDEX stats_site_checked ON stats (site_id, checked_at);
DROP TABLE stats_partitioned;
DROP FUNCTION stats_partitions_drop(date);
DROP FUNCTION stats_partition_create(date);
