-- +goose Up
-- outbox_drop looks the DEFAULT partition through again under its lock
-- before emptying it, and leaves it as it is if rows came meanwhile: rows
-- come to it while writers write past the ranges or into a gap between
-- them, whatever the relay's floor, and the relay now empties it once the
-- floor passed every row in it (before, only once the floor passed the
-- newest range, which partitions made ahead kept out of reach: it was
-- never emptied while writers wrote). Nothing else changes; outbox.sql
-- has the same function.
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

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION outbox_drop(part regclass) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    parent regclass;
    waiting bigint;
    is_default boolean;
    empty boolean;
BEGIN
    SELECT i.inhparent::regclass, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' INTO parent, is_default
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhrelid = part;
    IF parent IS NULL THEN
        RAISE EXCEPTION 'outbox_drop: % is not a partition of an outbox table', part;
    END IF;
    EXECUTE format('SELECT NOT EXISTS (SELECT FROM %s)', part) INTO empty;
    IF empty AND is_default THEN
        RETURN NULL; -- nothing to empty: the parent is left alone
    END IF;
    EXECUTE format('SELECT min(id) FROM %s WHERE NOT published AND parked_at IS NULL', part) INTO waiting;
    IF waiting IS NOT NULL THEN
        RETURN waiting;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', parent);
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
