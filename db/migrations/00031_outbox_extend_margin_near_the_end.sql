-- +goose Up
-- outbox_extend applies its margin as soon as writers are within it of the
-- end of the ranges, not only once they have passed it: writers keep
-- drawing ids while the function holds its locks, and one that crossed the
-- end meanwhile waited for the DEFAULT partition and then failed, its id
-- taken by the new range. Nothing else changes; outbox.sql has the same
-- function.
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
    -- fail on the one, the writer on the other). So once writers have
    -- reached the end of the ranges, new ones start a margin above every
    -- id drawn: each writer waiting here holds one id, and there are fewer
    -- of them than the margin; the ids skipped go to the DEFAULT partition.
    IF drawn >= coalesce(next_id, 1) THEN
        next_id := drawn + 1 + least(10000, partition_rows / 10);
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
