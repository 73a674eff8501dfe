-- Open incidents by kind, for the sitewatch_sink_open_incidents gauge.
SELECT kind, count(*) FROM incidents WHERE resolved_at IS NULL GROUP BY kind
