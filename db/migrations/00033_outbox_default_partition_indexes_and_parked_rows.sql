-- +goose Up
-- The DEFAULT partition gets the look-up indexes of the other partitions:
-- outbox_extend adds them the next time it makes partitions (it holds the
-- DEFAULT partition's lock then), so tables made before get them too.
-- Rows pile up there while writers outrun the ranges (the relay down), and
-- without them every claim read all of its rows above the floor looking
-- for rows in backoff: 1.1 s a claim with 312,501 rows there.
-- outbox_drop writes parked rows again only once the partition is gone:
-- written before, with ids no range takes, they went to the DEFAULT
-- partition being emptied, and were emptied out with it. outbox.sql has
-- the same functions.
-- +goose StatementBegin
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
-- +goose StatementEnd
-- +goose StatementBegin
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
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
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
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_drop(part regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    parent regclass;
    waiting bigint;
    is_default boolean;
    seen bigint;
    now_seen bigint;
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
    EXECUTE format($q$INSERT INTO %s (event_id, topic_name, msg_key, payload, headers, created_at, attempts,
                                          last_error, next_attempt_at, parked_at)
                      SELECT event_id, topic_name, msg_key, payload, headers, created_at, attempts,
                             last_error, next_attempt_at, parked_at
                      FROM %s WHERE parked_at IS NOT NULL ORDER BY id$q$, parent, part);
    IF is_default THEN
        EXECUTE format('TRUNCATE %s', part);
    ELSE
        EXECUTE format('DROP TABLE %s', part);
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
