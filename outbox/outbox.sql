-- The outbox table a sitewatch relay publishes from. Apply it once to your
-- database (it is idempotent); rename the table if you like and give the
-- name to NewWriter and to the relay (RELAY_TABLE or the sources file).
--
-- The table is partitioned by id ranges (outbox_p<first id>): rows are only
-- ever inserted, flipped published in place and, once a whole partition
-- is published and past the relay's retention, dropped with it. Nothing
-- waits for vacuum. The relay creates partitions ahead of the writers and
-- drops old ones; a DEFAULT partition (outbox_default) takes rows should
-- writers ever outrun the partitions created ahead.
--
-- A table of the earlier, unpartitioned layout (the same columns) is
-- converted in place by CALL outbox_partition('your_table'): it becomes the
-- first partition, unchanged (no row copied or republished), and later
-- rows go to new partitions. Applying this file again does that too.
--
-- Create the table first in the earlier layout, so that one path (the
-- conversion below) makes every outbox, fresh or not.
CREATE TABLE IF NOT EXISTS outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    topic_name      text        NOT NULL,
    msg_key         bytea,
    payload         bytea       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published       boolean     NOT NULL DEFAULT false,
    published_at    timestamptz,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    -- Per-key order across relay replicas: a key always lands in one of 64
    -- lanes, and each lane is leased to one relay at a time.
    lane            smallint    NOT NULL GENERATED ALWAYS AS (
        CASE WHEN msg_key IS NULL THEN (id % 64)::smallint
             ELSE (hashtextextended(encode(msg_key, 'hex'), 0) & 63)::smallint END) STORED,
    next_attempt_at timestamptz,
    parked_at       timestamptz
-- Room in each page for the publish flip of every row in it: a relay flips
-- a batch in one statement, and a row's new version stays in its page (a
-- HOT update: no index entry, pruned in place) only if the page has room
-- for it beside the old, which is held until the batch commits. Half the
-- page does that for rows of about 100 bytes of payload and more; at 80 %
-- three in four flips of check-result-sized rows left their page and added
-- an entry to each unique index, and cost 2.5 times as much. Carried on to
-- every partition.
) WITH (fillfactor = 50);

-- Wakes relays at commit (LISTEN/NOTIFY); they also poll, so a lost
-- notification only delays a row by the poll interval. The channel is
-- "schema.table", or "outbox_" and its md5 when that is longer than a
-- channel name may be (63 bytes).
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
BEGIN
    IF octet_length(channel) > 63 THEN
        channel := 'outbox_' || md5(channel);
    END IF;
    PERFORM pg_notify(channel, '');
    RETURN NULL;
END
$$;

-- The partitions of outbox table tbl: name, first id, the id after the
-- last (NULL for the DEFAULT partition, and a first id of NULL for the
-- unbounded first partition of a converted table), in id order.
CREATE OR REPLACE FUNCTION outbox_partitions(tbl regclass)
RETURNS TABLE (part regclass, first_id bigint, end_id bigint) LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''(-?\d+)''\)'))[1]::bigint,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''(-?\d+)''\)'))[1]::bigint
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = tbl
    ORDER BY 3 NULLS LAST, 2 NULLS FIRST
$$;

-- Creates partitions of tbl, partition_rows ids each, until ahead of them
-- lie beyond the highest id written; returns how many it created. A new
-- partition copies the storage parameters (fillfactor, autovacuum) of the
-- newest one (or of the DEFAULT partition), so settings put on a partition
-- carry on to the next ones.
-- When partitions are needed it locks what ATTACH locks, in ATTACH's
-- order: the parent in SHARE UPDATE EXCLUSIVE mode (writers and relays go
-- on) and the DEFAULT partition in ACCESS EXCLUSIVE mode (statements that
-- read it, such as the relays' claims, wait until the end of the
-- transaction; writers wait only for rows it would take). The highest id
-- and the highest id drawn are read under those locks, so that once
-- writers have outrun the partitions made ahead (their rows in the DEFAULT
-- partition) the new partitions start above every row and every writer
-- waiting, however fast rows keep coming.
CREATE OR REPLACE FUNCTION outbox_extend(tbl regclass, partition_rows bigint, ahead integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    sch text;
    rel text;
    top bigint;
    next_id bigint;
    opts text[];
    created integer := 0;
    part text;
    dflt regclass;
    seq text;
    drawn bigint;
    margin bigint := least(10000, partition_rows / 10);
    shut boolean;
BEGIN
    IF partition_rows < 1 OR ahead < 1 THEN
        RAISE EXCEPTION 'outbox_extend: partition_rows (%) and ahead (%) must be at least 1', partition_rows, ahead;
    END IF;
    SELECT n.nspname, c.relname INTO sch, rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    EXECUTE format('SELECT max(id) FROM %s', tbl) INTO top;
    SELECT max(end_id) INTO next_id FROM outbox_partitions(tbl);
    IF greatest(coalesce(next_id, 0), coalesce(top, 0) + 1) > coalesce(top, 0) + ahead::bigint * partition_rows THEN
        RETURN 0; -- enough lie ahead; nothing is locked
    END IF;
    EXECUTE format('LOCK TABLE ONLY %s IN SHARE UPDATE EXCLUSIVE MODE', tbl);
    SELECT p.part INTO dflt FROM outbox_partitions(tbl) p WHERE p.end_id IS NULL;
    IF dflt IS NOT NULL THEN
        EXECUTE format('LOCK TABLE ONLY %s IN ACCESS EXCLUSIVE MODE', dflt);
        -- The DEFAULT partition gets the look-up indexes of the others
        -- (tables made before sitewatch's migration 00033 lack them): rows
        -- pile up in it while writers outrun the ranges (the relay down),
        -- and without them every claim read all of its rows above the
        -- floor looking for rows in backoff, just when the relay has the
        -- most to catch up with.
        IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = dflt
                       AND pg_get_expr(i.indpred, i.indrelid) = '(next_attempt_at IS NOT NULL)') THEN
            EXECUTE format('CREATE INDEX ON %s (next_attempt_at) WHERE next_attempt_at IS NOT NULL', dflt);
        END IF;
        IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = dflt
                       AND pg_get_expr(i.indpred, i.indrelid) = '(parked_at IS NOT NULL)') THEN
            EXECUTE format('CREATE INDEX ON %s (id) WHERE parked_at IS NOT NULL', dflt);
        END IF;
    END IF;
    EXECUTE format('SELECT max(id) FROM %s', tbl) INTO top;
    top := coalesce(top, 0);
    -- The highest id drawn: a writer may hold one it has not written yet.
    seq := pg_get_serial_sequence(tbl::text, 'id');
    drawn := top;
    IF seq IS NOT NULL THEN
        EXECUTE format('SELECT greatest(last_value - CASE WHEN is_called THEN 0 ELSE 1 END, %s) FROM %s', top, seq) INTO drawn;
    END IF;
    SELECT max(end_id) INTO next_id FROM outbox_partitions(tbl);
    SELECT c.reloptions INTO opts FROM outbox_partitions(tbl) p JOIN pg_class c ON c.oid = p.part
    ORDER BY p.end_id DESC NULLS LAST LIMIT 1;
    -- Rows above every range are in the DEFAULT partition, and so is the
    -- row of a writer that drew its id above every range and now waits
    -- for the lock held here: a new range must take neither (ATTACH would
    -- fail on the one, the writer on the other). Writers keep drawing ids
    -- while the locks are held, and those that cross the end of the ranges
    -- wait here too. So once writers are within a margin of that end, new
    -- ranges start a margin above every id drawn: a writer would have to
    -- draw more ids than the margin in the milliseconds the locks are held
    -- to fail; the ids skipped go to the DEFAULT partition. No margin when
    -- this transaction already shuts writers out (outbox_partition does).
    SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'relation' AND relation = tbl AND pid = pg_backend_pid() AND granted
                   AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) INTO shut;
    IF NOT shut AND (next_id IS NULL AND drawn > 0 OR drawn + margin >= next_id) THEN
        next_id := drawn + 1 + margin;
    END IF;
    next_id := greatest(coalesce(next_id, top + 1), top + 1);
    WHILE next_id <= drawn + ahead::bigint * partition_rows LOOP
        part := left(rel, 40) || '_p' || next_id;
        EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE)', sch, part, tbl);
        IF opts IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I.%I SET (%s)', sch, part, array_to_string(opts, ', '));
        END IF;
        -- Per partition, and none on a column the publish flip changes:
        -- the flip stays a HOT update, in its page, touching no index.
        EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY (id), ADD UNIQUE (event_id)', sch, part);
        EXECUTE format('CREATE INDEX ON %I.%I (next_attempt_at) WHERE next_attempt_at IS NOT NULL', sch, part);
        EXECUTE format('CREATE INDEX ON %I.%I (id) WHERE parked_at IS NOT NULL', sch, part);
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%s) TO (%s)',
                       tbl, sch, part, next_id, next_id + partition_rows);
        next_id := next_id + partition_rows;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- outbox_extend and outbox_drop run as the table's owner (they create,
-- attach and drop partitions): only the relay's role may call them.
--   GRANT EXECUTE ON FUNCTION outbox_extend(regclass, bigint, integer), outbox_drop(regclass) TO your_relay_role;
-- Drops partition part of an outbox table once no row in it waits to be
-- published, or empties it if it is the DEFAULT partition. Parked rows are
-- carried over: written again into the table (new ids, the same event
-- ids) once it is gone, so they stay listed and can be requeued. Returns NULL when
-- done, or the lowest id still waiting (nothing is dropped then). The
-- partition is looked through before any lock is taken, so that writers
-- never wait for it; the relay calls this only for a partition its floor
-- passed a retention ago, and once the floor passed it no transaction
-- still running can write below it (see the relay's Floor), except with an
-- id drawn long before its row is written (a sequence cache): such a row,
-- its range gone, goes to the DEFAULT partition. Then the parent is
-- locked, the order every statement on the table takes its locks in, so no
-- deadlock can form; the caller's lock_timeout bounds the wait, during
-- which writers queue behind the request. Rows keep coming to the DEFAULT
-- partition while writers write past the ranges or into a gap between
-- them, whatever the floor: it is looked through again under the lock,
-- when every writer that wrote to it has committed and the others wait,
-- and is left as it is (NULL, or the row waiting) if it changed.
CREATE OR REPLACE FUNCTION outbox_drop(part regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    parent regclass;
    waiting bigint;
    is_default boolean;
    seen bigint;
    now_seen bigint;
    parked jsonb;
BEGIN
    SELECT i.inhparent::regclass, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' INTO parent, is_default
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhrelid = part;
    IF parent IS NULL THEN
        RAISE EXCEPTION 'outbox_drop: % is not a partition of an outbox table', part;
    END IF;
    EXECUTE format('SELECT count(*), min(id) FILTER (WHERE NOT published AND parked_at IS NULL) FROM %s', part) INTO seen, waiting;
    IF seen = 0 AND is_default THEN
        RETURN NULL; -- nothing to empty: the parent is left alone
    END IF;
    IF waiting IS NOT NULL THEN
        RETURN waiting;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', parent);
    IF is_default THEN -- looked through again under the lock (the relay looks for this line)
        EXECUTE format('SELECT count(*), min(id) FILTER (WHERE NOT published AND parked_at IS NULL) FROM %s', part) INTO now_seen, waiting;
        IF waiting IS NOT NULL OR now_seen <> seen THEN
            RETURN waiting; -- rows came meanwhile: emptied once they too are published and kept
        END IF;
    END IF;
    -- Parked rows are held aside while the partition goes: written again
    -- with new ids, they may land in the DEFAULT partition (ids no range
    -- takes), which is the one being emptied.
    EXECUTE format('SELECT jsonb_agg(to_jsonb(p) ORDER BY p.id) FROM %s p WHERE parked_at IS NOT NULL', part) INTO parked;
    IF is_default THEN
        EXECUTE format('TRUNCATE %s', part);
    ELSE
        EXECUTE format('DROP TABLE %s', part);
    END IF;
    IF parked IS NOT NULL THEN
        EXECUTE format($q$INSERT INTO %s (event_id, topic_name, msg_key, payload, headers, created_at, attempts,
                                              last_error, next_attempt_at, parked_at)
                          SELECT event_id, topic_name, msg_key, payload, headers, created_at, attempts,
                                 last_error, next_attempt_at, parked_at
                          FROM jsonb_populate_recordset(NULL::%s, $1) ORDER BY id$q$, parent, parent) USING parked;
    END IF;
    RETURN NULL;
END
$$;

-- Converts outbox table tbl of the earlier, unpartitioned layout to the
-- partitioned one; a partitioned table is left as it is. The table's rows
-- stay in its heap, which becomes the first partition (tbl_p0), published
-- flags, retries and parked rows as they were; an empty table is dropped
-- instead. Writers and relays wait for the conversion's ACCESS EXCLUSIVE
-- lock, held until the caller commits: a moment, as no row is copied.
CREATE OR REPLACE PROCEDURE outbox_partition(tbl regclass, partition_rows bigint DEFAULT 1000000)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    sch text;
    rel text;
    kind "char";
    top bigint;
    old text;
    idx record;
BEGIN
    SELECT n.nspname, c.relname, c.relkind INTO sch, rel, kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF kind = 'p' THEN
        RETURN;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tbl);
    EXECUTE format('SELECT max(id) FROM %s', tbl) INTO top;
    old := left(rel, 40) || '_p0';
    EXECUTE format('ALTER TABLE %s ALTER COLUMN id DROP IDENTITY IF EXISTS', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS outbox_notify ON %s', tbl);
    EXECUTE format('ALTER TABLE %s RENAME TO %I', tbl, old);
    -- The old table's indexes, renamed with it, free their names.
    FOR idx IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE i.indrelid = format('%I.%I', sch, old)::regclass AND c.relname LIKE rel || '%' LOOP
        EXECUTE format('ALTER INDEX %I.%I RENAME TO %I', sch, idx.relname, old || substr(idx.relname, length(rel) + 1));
    END LOOP;
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING STORAGE) PARTITION BY RANGE (id)',
                   sch, rel, sch, old);
    EXECUTE format('CREATE SEQUENCE %I.%I START %s OWNED BY %I.%I.id', sch, rel || '_id_seq', coalesce(top, 0) + 1, sch, rel);
    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN id SET DEFAULT nextval(%L)', sch, rel, format('%I.%I', sch, rel || '_id_seq'));
    EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY (id)', sch, rel);
    IF top IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (MINVALUE) TO (%s)', sch, rel, sch, old, top + 1);
    END IF;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT', sch, left(rel, 40) || '_default', sch, rel);
    EXECUTE format('ALTER TABLE %I.%I SET (%s)', sch, left(rel, 40) || '_default',
                   coalesce((SELECT array_to_string(reloptions, ', ') FROM pg_class WHERE oid = format('%I.%I', sch, old)::regclass),
                            'fillfactor = 100'));
    IF top IS NULL THEN
        EXECUTE format('DROP TABLE %I.%I', sch, old);
    END IF;
    -- The new partitions take the old table's storage parameters.
    PERFORM outbox_extend(format('%I.%I', sch, rel)::regclass, partition_rows, 2);
    EXECUTE format('CREATE TRIGGER outbox_notify AFTER INSERT ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()', sch, rel);
END
$$;

REVOKE EXECUTE ON FUNCTION outbox_extend(regclass, bigint, integer), outbox_drop(regclass) FROM PUBLIC;

CALL outbox_partition('outbox');

-- Partitions of a table made or converted by an earlier outbox.sql were
-- filled to 80 % (100 % where converted from a table without the setting):
-- room for one row's flip in four. Any above half the page are set to half:
-- rows written from then on have the room; those written before keep their
-- pages.
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT o.part FROM outbox_partitions('outbox') o JOIN pg_class c ON c.oid = o.part
             WHERE coalesce((SELECT split_part(opt, '=', 2)::integer FROM unnest(c.reloptions) AS opt
                             WHERE opt LIKE 'fillfactor=%'), 100) > 50 LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 50)', p);
    END LOOP;
END
$$;
