-- +goose Up
-- Issue 9: what each sink replica last said about its partitions, so a
-- site is judged stale only when every replica has read its partitions up
-- to their recent ends. A replica caught up on its own partitions would
-- otherwise open stale incidents for sites whose checks wait, unread, on
-- a partition another replica is still catching up on. Each replica
-- writes its row at every incident sweep and deletes it at shutdown;
-- rows of replicas that stopped reporting are ignored, then deleted.
CREATE TABLE sink_replicas (
    instance_id text        PRIMARY KEY CHECK (instance_id ~ '^[A-Za-z0-9._-]{1,200}$'),
    caught_up   boolean     NOT NULL,
    behind      bigint      NOT NULL CHECK (behind >= 0), -- messages left to read on its partitions
    reported_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE sink_replicas;
