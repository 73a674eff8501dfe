-- +goose Up
-- Issue 4: sites get headers, expected status codes and several must-match /
-- must-not-match regexes; stats get the check's phases, body, redirect, TLS
-- and address details (schema_version 2 of the check event).
ALTER TABLE sites
    ADD COLUMN headers        jsonb  NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN expect_status  text   NOT NULL DEFAULT '200-399',
    ADD COLUMN must_match     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN must_not_match text[] NOT NULL DEFAULT '{}';
UPDATE sites SET must_match = ARRAY[regex] WHERE regex IS NOT NULL AND regex <> '';
ALTER TABLE sites DROP COLUMN regex;

-- The monitor reloads only the rows changed since its last reload; the
-- trigger bumps updated_at on every change, also one made by hand in psql.
CREATE INDEX sites_updated_at ON sites (updated_at);

-- +goose StatementBegin
CREATE FUNCTION sites_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER sites_touch BEFORE UPDATE ON sites FOR EACH ROW EXECUTE FUNCTION sites_touch();

ALTER TABLE stats
    ADD COLUMN schema_version   smallint,
    ADD COLUMN regexes          jsonb,
    ADD COLUMN dns_ms           double precision,
    ADD COLUMN connect_ms       double precision,
    ADD COLUMN tls_ms           double precision,
    ADD COLUMN ttfb_ms          double precision,
    ADD COLUMN transfer_ms      double precision,
    ADD COLUMN body_bytes       bigint,
    ADD COLUMN truncated        boolean,
    ADD COLUMN redirects        integer,
    ADD COLUMN final_url        text,
    ADD COLUMN tls_expiry       timestamptz,
    ADD COLUMN tls_chain_expiry timestamptz,
    ADD COLUMN remote_ip        text;

-- +goose Down
ALTER TABLE stats
    DROP COLUMN schema_version, DROP COLUMN regexes, DROP COLUMN dns_ms, DROP COLUMN connect_ms,
    DROP COLUMN tls_ms, DROP COLUMN ttfb_ms, DROP COLUMN transfer_ms, DROP COLUMN body_bytes,
    DROP COLUMN truncated, DROP COLUMN redirects, DROP COLUMN final_url, DROP COLUMN tls_expiry,
    DROP COLUMN tls_chain_expiry, DROP COLUMN remote_ip;
DROP TRIGGER sites_touch ON sites;
DROP FUNCTION sites_touch();
DROP INDEX sites_updated_at;
ALTER TABLE sites ADD COLUMN regex text;
UPDATE sites SET regex = must_match[1] WHERE cardinality(must_match) > 0;
ALTER TABLE sites
    DROP COLUMN headers, DROP COLUMN expect_status, DROP COLUMN must_match, DROP COLUMN must_not_match;
