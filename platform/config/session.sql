-- Run on each new connection of a service's pool (see OpenPool): the
-- session's settings, $1 their names and $2 their values. A SET, not a
-- startup parameter, which PgBouncer refuses unless listed in its
-- ignore_startup_parameters.
SELECT set_config(s.name, s.value, false) FROM unnest($1::text[], $2::text[]) AS s(name, value)
