-- The server's side of the lease connection's dead-peer detection (see
-- connConfig): it drops a vanished client, and frees its locks, after idle
-- $1 s plus 3 probes every $2 s, or once its data has gone unacknowledged
-- for $3 ms. Set after connecting rather than as startup parameters, which
-- PgBouncer refuses.
SELECT set_config('tcp_keepalives_idle', $1, false), set_config('tcp_keepalives_interval', $2, false),
       set_config('tcp_keepalives_count', '3', false), set_config('tcp_user_timeout', $3, false)
