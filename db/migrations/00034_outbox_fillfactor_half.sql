-- +goose Up
-- Half of each page of the outbox's partitions is left for the publish
-- flip (outbox.sql has the same). A relay flips a batch in one statement,
-- and a row's new version stays in its page (a HOT update: no index entry,
-- pruned in place) only if the page has room for it beside the old, held
-- until the batch commits. At 80 % (00029, from 00016) there was room for
-- one row in four of check-result size: the others moved to another page
-- and added an entry to the primary key and to the unique event_id, and a
-- flip cost 2.5 times as much. Rows written from now on have the room;
-- those written before keep their pages. New partitions copy the newest.
-- +goose StatementBegin
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
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    p regclass;
BEGIN
    FOR p IN SELECT o.part FROM outbox_partitions('outbox') o JOIN pg_class c ON c.oid = o.part
             WHERE 'fillfactor=50' = ANY(c.reloptions) LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 80)', p);
    END LOOP;
END
$$;
-- +goose StatementEnd
