-- A batch that holds an event already stored (COPY, the usual way in,
-- failed on its key) is written with this statement instead: one per
-- batch. ON CONFLICT makes a re-delivered event (same
-- event_id, and so the same checked_at: an event is immutable; stats is
-- partitioned by checked_at, which every unique key must include) a no-op, which is what turns at-least-once into exactly-one-row;
-- the event ids returned are the rows stored for the first time, the only
-- ones that may move a site's state.
--
-- {{columns}} and {{arrays}} are filled once, at start, from statsColumns
-- in store.go: the column list, and one typed array parameter per column in
-- the same order ($1::uuid[], $2::bigint[], ...), so a column's name, type
-- and value are written side by side on one line there and cannot drift.
INSERT INTO stats ({{columns}})
SELECT * FROM unnest({{arrays}})
ON CONFLICT (event_id, checked_at) DO NOTHING
RETURNING event_id::text
