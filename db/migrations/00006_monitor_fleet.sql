-- +goose Up
-- Monitor fleet. Replicas of one region share the enabled sites by shard:
-- a site's shard is fixed by its id, and each replica leases shards with
-- advisory locks (platform/lease), so which sites a replica checks is
-- decided in SQL and it reads only its own. 256 shards: fine-grained
-- enough that three replicas hold within 1 % of a fair share.
ALTER TABLE sites
    ADD COLUMN shard smallint NOT NULL GENERATED ALWAYS AS ((id % 256)::smallint) STORED,
    -- The regions that check the site; empty: every region.
    ADD COLUMN regions text[] NOT NULL DEFAULT '{}'
        CONSTRAINT sites_regions_valid CHECK (
            array_position(regions, NULL) IS NULL
            AND array_to_string(regions, ',') ~ '^([a-z0-9][a-z0-9-]{0,62}(,|$))*$');
CREATE INDEX sites_enabled_shard ON sites (shard, id) WHERE enabled;

-- A small number per region keys its replicas' advisory locks.
CREATE TABLE monitor_regions (
    id         smallint    GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The region of the monitor that made the check; NULL for rows stored
-- before checks carried one.
ALTER TABLE stats ADD COLUMN region text;

-- +goose Down
ALTER TABLE stats DROP COLUMN region;
DROP TABLE monitor_regions;
DROP INDEX sites_enabled_shard;
ALTER TABLE sites DROP COLUMN regions, DROP COLUMN shard;
