#!/usr/bin/env bash
# PgBouncer (Debian's package) in front of a PostgreSQL, private to a test or
# for trying sitewatch behind it by hand:
#   pgbouncer.sh up DIR PORT MODE UPSTREAM_PORT
#       listens on 127.0.0.1:PORT, pool_mode MODE (session, transaction or
#       statement), every database name passed on to 127.0.0.1:UPSTREAM_PORT
#       (scripts/pg.sh's is 55432); clients log in with SCRAM as the roles of
#       scripts/pg.sh (sitewatch and the services', each its name as the
#       password), and PgBouncer logs in upstream as them. DIR holds the
#       configuration, log and pid file.
#   pgbouncer.sh down DIR
# As root PgBouncer runs as the postgres user (it refuses root), which must
# be able to write DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { echo "usage: $0 up DIR PORT session|transaction|statement UPSTREAM_PORT | down DIR" >&2; exit 2; }

up() {
  local dir=$1 port=$2 mode=$3 upstream=$4 r
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  [[ $upstream =~ ^[0-9]+$ ]] || die "UPSTREAM_PORT must be a number, got '$upstream'"
  [[ $mode == session || $mode == transaction || $mode == statement ]] || die "MODE must be session, transaction or statement, got '$mode'"
  need pgbouncer pgbouncer
  : >"$dir/userlist.txt"
  for r in sitewatch sitewatch_monitor sitewatch_relay sitewatch_sink; do
    echo "\"$r\" \"$r\"" >>"$dir/userlist.txt"
  done
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$upstream

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = $mode
max_client_conn = 1000
default_pool_size = 100
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
INI
  if is_root; then chown -R postgres: "$dir"; fi
  as_postgres pgbouncer -d "$dir/pgbouncer.ini" >>"$dir/start.log" 2>&1 || die "starting PgBouncer failed" "$dir/start.log" "$dir/pgbouncer.log"
  wait_for 30 tcp_open 127.0.0.1 "$port" || die "PgBouncer does not listen on 127.0.0.1:$port after 30s" "$dir/pgbouncer.log"
}

down() {
  local dir=$1 pid
  [[ -f $dir/pgbouncer.pid ]] || return 0
  pid=$(<"$dir/pgbouncer.pid")
  kill "$pid" 2>/dev/null || return 0
  # shellcheck disable=SC2317 # called through wait_for
  gone() { ! kill -0 "$pid" 2>/dev/null; }
  wait_for 30 gone || die "PgBouncer (pid $pid) still runs 30s after SIGTERM" "$dir/pgbouncer.log"
}

case ${1:-} in
  up) [[ $# -eq 5 ]] || usage; up "$2" "$3" "$4" "$5" ;;
  down) [[ $# -eq 2 ]] || usage; down "$2" ;;
  *) usage ;;
esac
