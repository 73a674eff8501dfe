#!/usr/bin/env bash
# make run: migrations, demo sites (first run only), the three services in
# the background with logs in .cache/run/, and a live feed of the checks
# arriving in the stats table. Ctrl-C stops the services cleanly.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="$REPO/.cache/bin"
RUN="$REPO/.cache/run"
mkdir -p "$RUN"
eval "$("$SCRIPTS/infra.sh" env)"
export LOG_FORMAT=console

"$BIN/monitor" migrate >"$RUN/migrate.log" 2>&1 || {
  echo "ERROR: migrations failed:" >&2; tail -n 40 "$RUN/migrate.log" >&2; exit 1; }

if [[ $("$BIN/monitor" sites list | wc -l) -le 1 ]]; then
  # Demo sites that work offline (the services' own endpoints) and one on
  # the internet, which shows how a failed check is recorded when offline.
  "$BIN/monitor" sites add http://127.0.0.1:9101/healthz --match '"status":"OK"' --interval 5s --name 'Monitor' >/dev/null
  "$BIN/monitor" sites add http://127.0.0.1:9102/metrics --match 'sitewatch_relay_published_total{source="default"} [1-9]' --interval 10s \
    --name 'Relay' >/dev/null
  "$BIN/monitor" sites add https://example.com/ --match 'Example Domain' --interval 15s --name 'example.com' >/dev/null
fi
if [[ $("$BIN/monitor" pages list | wc -l) -le 1 ]]; then
  # A public status page of the demo sites.
  ids=$(psql "$DATABASE_URL" -XAtc "SELECT string_agg(id::text, ',' ORDER BY id) FROM sites WHERE url LIKE 'http://127.0.0.1:910%'")
  other=$(psql "$DATABASE_URL" -XAtc "SELECT string_agg(id::text, ',' ORDER BY id) FROM sites WHERE url NOT LIKE 'http://127.0.0.1:910%'")
  args=(--title 'sitewatch demo' --announcement 'The demo watches **its own services** and one site on the internet.')
  [[ -n $ids ]] && args+=(--group "Pipeline=$ids")
  [[ -n $other ]] && args+=(--group "Internet=$other")
  "$BIN/monitor" pages add demo "${args[@]}" >/dev/null || echo "WARNING: the demo status page was not added" >&2
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping the services (SIGTERM; each finishes its batch in flight)..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped. PostgreSQL and Kafka keep running: make down stops them."
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# The demo sites are the services' own endpoints on loopback, which the
# monitor's address guard refuses unless allowed.
export MONITOR_ALLOW_NETS=${MONITOR_ALLOW_NETS:-127.0.0.0/8}
# Heartbeat sites' jobs ping the monitor here (POST /ping/<token>).
export MONITOR_PING_ADDR=${MONITOR_PING_ADDR:-127.0.0.1:8081}
# Public status pages (monitor pages add), without a token.
export SINK_PUBLIC_ADDR=${SINK_PUBLIC_ADDR:-127.0.0.1:8090}
# The relay publishes only the topics it is allowed: sitewatch's own.
export RELAY_TOPICS=${RELAY_TOPICS:-sitewatch.*}
for svc in sink relay monitor; do
  "$BIN/$svc" >"$RUN/$svc.log" 2>&1 &
  pids+=($!)
done

cat <<MSG
sitewatch is running: monitor → outbox → relay → Kafka ($KAFKA_BROKERS) → sink → stats.

  sites:    $BIN/monitor sites list      (DATABASE_URL: eval "\$(scripts/infra.sh env)")
  results:  psql "$DATABASE_URL" -c 'SELECT * FROM stats ORDER BY id DESC LIMIT 10'
  status:   http://127.0.0.1:8080/ (the status page, served by the sink)
  public:   http://$SINK_PUBLIC_ADDR/status/demo (a public status page: monitor pages help)
  metrics:  http://127.0.0.1:9101/metrics (monitor)  :9102 (relay)  :9103 (sink)
  pings:    http://$MONITOR_PING_ADDR/ping/<token> (heartbeat sites: $BIN/monitor sites add heartbeat://my-job)
  logs:     $RUN/{monitor,relay,sink}.log

New rows in stats as they arrive (Ctrl-C to stop):
MSG

last=$(psql "$DATABASE_URL" -XAtc 'SELECT coalesce(max(id), 0) FROM stats')
while true; do
  sleep 2
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      svc=$(echo sink relay monitor | cut -d' ' -f$((i + 1)))
      echo "ERROR: $svc exited; last lines of $RUN/$svc.log:" >&2
      tail -n 40 "$RUN/$svc.log" >&2
      exit 1
    fi
  done
  while IFS=$'\t' read -r id line; do
    [[ -n $id ]] || continue
    echo "  $line"
    last=$id
  done < <(psql "$DATABASE_URL" -XAt -F $'\t' -c "
    SELECT id, format('%s  site %s  %-40s %s  %s ms  regex=%s  %s',
      to_char(checked_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), site_id, url,
      coalesce(status_code::text, '---'), round(duration_ms::numeric, 1), coalesce(regex_matched::text, '-'),
      coalesce(error_class || ': ' || left(error, 60), 'ok'))
    FROM stats WHERE id > $last ORDER BY id")
done
