-- Run on each new connection of a service's pool (see OpenPool): no JIT
-- compiling. The services' statements take well under a millisecond, and
-- one whose estimated cost passes jit_above_cost (the relay's claim over a
-- partitioned outbox, whose never-analyzed partitions the planner takes
-- for full ones) spent 1.5 s compiling for 0.3 ms of work, on every run of
-- its generic plan. A SET, not a startup parameter, which PgBouncer
-- refuses unless listed in its ignore_startup_parameters.
SET jit = off
