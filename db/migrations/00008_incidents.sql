-- +goose Up
-- Incidents. The sink, where every region's checks of a site meet, keeps
-- each site's state per region and as a whole, and opens and resolves
-- incidents in the transaction that stores the checks, together with the
-- outbox row announcing the change.

-- Per-site settings, set with the monitor's sites command.
ALTER TABLE sites
    ADD COLUMN failure_threshold smallint NOT NULL DEFAULT 2 CHECK (failure_threshold BETWEEN 1 AND 100),
    ADD COLUMN success_threshold smallint NOT NULL DEFAULT 2 CHECK (success_threshold BETWEEN 1 AND 100),
    -- Regions that must agree the site is down; NULL: a majority.
    ADD COLUMN quorum smallint CHECK (quorum BETWEEN 1 AND 64),
    ADD COLUMN tls_warning_days smallint NOT NULL DEFAULT 14 CHECK (tls_warning_days BETWEEN 0 AND 365);

-- A site's state in one region: the consecutive failures or passes that
-- move it, and the newest check applied (an older one arriving late is
-- stored but moves nothing).
CREATE TABLE site_region_state (
    site_id         bigint      NOT NULL,
    region          text        NOT NULL,
    state           text        NOT NULL CHECK (state IN ('up', 'down')),
    failures        integer     NOT NULL DEFAULT 0,
    passes          integer     NOT NULL DEFAULT 0,
    last_checked_at timestamptz NOT NULL,
    error_class     text,
    error           text,
    PRIMARY KEY (site_id, region)
);

-- The site as a whole.
CREATE TABLE site_state (
    site_id    bigint      PRIMARY KEY,
    state      text        NOT NULL CHECK (state IN ('up', 'degraded', 'down')),
    since      timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE incidents (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     bigint      NOT NULL,
    url         text        NOT NULL,
    -- down: a quorum of regions says so; stale: no check from any region
    -- for 3 intervals; warning: the TLS certificate expires soon.
    kind        text        NOT NULL CHECK (kind IN ('down', 'stale', 'warning')),
    opened_at   timestamptz NOT NULL,
    resolved_at timestamptz,
    error_class text,
    error       text,
    regions     text[]      NOT NULL DEFAULT '{}',
    resolution  text -- recovered, removed, disabled, renewed, checks_resumed
);
-- At most one open incident of a kind per site: re-runs cannot open twice.
CREATE UNIQUE INDEX incidents_open ON incidents (site_id, kind) WHERE resolved_at IS NULL;
CREATE INDEX incidents_recent ON incidents (opened_at DESC);

-- +goose Down
DROP TABLE incidents;
DROP TABLE site_state;
DROP TABLE site_region_state;
ALTER TABLE sites DROP COLUMN tls_warning_days, DROP COLUMN quorum, DROP COLUMN success_threshold,
    DROP COLUMN failure_threshold;
