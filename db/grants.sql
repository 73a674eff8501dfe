-- The privileges of each service's database role on sitewatch's tables in
-- the schema just migrated, and nothing more: re-applied by every migrate
-- (after the migrations), so this file is the whole truth. A role that does
-- not exist is skipped; create it (LOGIN, a password) and migrate again.
-- Migrations run as the owner role, which owns every table.
--   monitor: writes sites and its settings (regions, channels, silences, status pages),
--            and the heartbeats' deadlines, inserts results into the outbox, reads incidents and deliveries
--            (monitor incidents, channels show)
--   relay:   reads, flips and deletes outbox rows, writes a requeued parked
--            row again (a new id), and creates and drops the outbox's
--            partitions through the owner's SECURITY DEFINER functions
--   sink:    writes stats and what it derives (rollups, state, incidents,
--            deliveries) and its replicas' progress (sink_replicas), inserts incident events into the outbox, reads
--            sites and their settings, and adds and drops stats' daily
--            partitions through the owner's SECURITY DEFINER functions
DO $grants$
DECLARE
    g record;
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['sitewatch_monitor', 'sitewatch_relay', 'sitewatch_sink'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', current_schema(), r);
            EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', current_schema(), r);
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), r);
        END IF;
    END LOOP;
    FOR g IN
        SELECT v.role, v.tbl, v.privs FROM (VALUES
            ('sitewatch_monitor', 'sites',             'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_monitor', 'monitor_regions',   'SELECT, INSERT'),
            ('sitewatch_monitor', 'channels',          'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_monitor', 'site_channels',     'SELECT, INSERT, DELETE'),
            ('sitewatch_monitor', 'silences',          'SELECT, INSERT, DELETE'),
            ('sitewatch_monitor', 'heartbeats',        'SELECT, INSERT, UPDATE'),
            ('sitewatch_monitor', 'status_pages',      'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_monitor', 'status_page_sites', 'SELECT, INSERT, DELETE'),
            ('sitewatch_monitor', 'outbox',            'INSERT'),
            ('sitewatch_monitor', 'incidents',         'SELECT'),
            ('sitewatch_monitor', 'deliveries',        'SELECT'),

            ('sitewatch_relay',   'outbox',            'SELECT, INSERT, UPDATE, DELETE'),

            ('sitewatch_sink',    'stats',             'SELECT, INSERT'),
            ('sitewatch_sink',    'rollups',           'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_sink',    'rollup_fold',       'SELECT, UPDATE'),
            ('sitewatch_sink',    'site_region_state', 'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_sink',    'site_state',        'SELECT, INSERT, UPDATE, DELETE'),
            ('sitewatch_sink',    'incidents',         'SELECT, INSERT, UPDATE'),
            ('sitewatch_sink',    'deliveries',        'SELECT, INSERT, UPDATE'),
            ('sitewatch_sink',    'outbox',            'INSERT'),
            ('sitewatch_sink',    'sites',             'SELECT'),
            ('sitewatch_sink',    'monitor_regions',   'SELECT'),
            ('sitewatch_sink',    'channels',          'SELECT'),
            ('sitewatch_sink',    'site_channels',     'SELECT'),
            ('sitewatch_sink',    'silences',          'SELECT'),
            ('sitewatch_sink',    'status_pages',      'SELECT'),
            ('sitewatch_sink',    'status_page_sites', 'SELECT'),
            ('sitewatch_sink',    'sink_replicas',     'SELECT, INSERT, UPDATE, DELETE')
        ) AS v(role, tbl, privs)
        WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = v.role)
    LOOP
        EXECUTE format('GRANT %s ON TABLE %I TO %I', g.privs, g.tbl, g.role);
    END LOOP;
    -- Sequences behind plain (not identity) id columns.
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_sink') THEN
        GRANT USAGE ON SEQUENCE stats_id_seq, outbox_id_seq TO sitewatch_sink;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_monitor') THEN
        GRANT USAGE ON SEQUENCE outbox_id_seq TO sitewatch_monitor;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_relay') THEN
        GRANT USAGE ON SEQUENCE outbox_id_seq TO sitewatch_relay;
    END IF;
    -- The outbox's partitions are created and dropped by the relay
    -- through the owner's functions (outbox.sql).
    REVOKE EXECUTE ON FUNCTION outbox_extend(regclass, bigint, integer), outbox_drop(regclass) FROM PUBLIC;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_relay') THEN
        GRANT EXECUTE ON FUNCTION outbox_extend(regclass, bigint, integer), outbox_drop(regclass) TO sitewatch_relay;
    END IF;
    -- The partition functions run as the owner: only the sink may call them.
    REVOKE EXECUTE ON FUNCTION stats_partition_create(date), stats_partitions_drop(date) FROM PUBLIC;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_sink') THEN
        GRANT EXECUTE ON FUNCTION stats_partition_create(date), stats_partitions_drop(date) TO sitewatch_sink;
    END IF;
END
$grants$;
