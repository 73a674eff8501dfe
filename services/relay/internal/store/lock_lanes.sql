-- Takes this transaction's batch lock of each lane in $2 until it ends,
-- in the order given (ascending: two batches never wait on each other in
-- a cycle). $1 names the table (Store.Info). Should two relays ever hold a
-- lane at once (a lease lost mid-batch, or relays that lease lanes apart
-- after a conversion), the second waits here for the first's batch to end
-- instead of publishing past its rows. Lane locks stand in for row locks
-- (FOR UPDATE), which cost every claimed row a WAL record (2.9 records a
-- published row, 2.0 without). 131072 (1 << 17) keeps them apart from the
-- lease's own locks of the lanes (lane) and of member slots (65536 + slot).
SELECT count(pg_advisory_xact_lock($1::int4, (131072 + l)::int4)) FROM unnest($2::int4[]) AS l
