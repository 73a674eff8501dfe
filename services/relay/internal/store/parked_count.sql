SELECT count(*) FROM {{table}} WHERE parked_at IS NOT NULL
