-- +goose Up
-- Issue 9: each batch the sink writes updates the region state of every
-- site it holds a check of, and its writers (one per share of the topic's
-- partitions) each hold a transaction open while the others update rows in
-- the same pages, so no old version can be pruned yet. With pages full, an
-- update must move its row to another page and add an index entry: 80 % of
-- the updates did, and 10,000 sites' states took 15 MB instead of 1.5
-- (BenchmarkSinkPreloaded). Rows are small; leaving 80 % of each page free
-- keeps a row's updates in its page (HOT: no index entry, pruned in
-- place): the state step went from 13 to 8–9 µs a check. A page fills to
-- the new fillfactor as rows are written again; a table written before
-- settles as its rows move.
ALTER TABLE site_region_state SET (fillfactor = 20);

-- +goose Down
ALTER TABLE site_region_state RESET (fillfactor);
