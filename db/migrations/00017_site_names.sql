-- +goose Up
-- An optional display name per site, shown instead of the URL (status
-- page). Printable text only, at most 100 characters; '' for none.
ALTER TABLE sites ADD COLUMN name text NOT NULL DEFAULT ''
    CONSTRAINT sites_name_valid CHECK (length(name) <= 100 AND name !~ '[[:cntrl:]]');

-- +goose Down
ALTER TABLE sites DROP COLUMN name;
