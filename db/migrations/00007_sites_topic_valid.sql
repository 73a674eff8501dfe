-- +goose Up
-- A site's topic must be one Kafka accepts, in the database too (a row
-- written by hand or by another tool): the outbox writer would refuse its
-- results. NOT VALID: rows already there are not checked (the monitor
-- drops and counts their results), every new or changed row is.
ALTER TABLE sites ADD CONSTRAINT sites_topic_valid
    CHECK (topic_name ~ '^[A-Za-z0-9._-]{1,249}$' AND topic_name NOT IN ('.', '..')) NOT VALID;

-- +goose Down
ALTER TABLE sites DROP CONSTRAINT sites_topic_valid;
