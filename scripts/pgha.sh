#!/usr/bin/env bash
# A PostgreSQL primary with a synchronous streaming standby, private to a
# test (or to trying a failover by hand), on loopback:
#   pgha.sh up DIR PRIMARY_PORT STANDBY_PORT
#       initdb DIR/primary; a physical replication slot "standby";
#       pg_basebackup of it into DIR/standby, streaming through that slot,
#       named "standby" in synchronous_standby_names (synchronous_commit on:
#       a commit returns once the standby has its WAL); database and owner
#       role sitewatch. Returns once the standby streams synchronously.
#   pgha.sh stop DIR primary|standby [MODE]   pg_ctl stop, MODE fast (default)
#                                            or immediate (a crash)
#   pgha.sh start DIR primary|standby         start a stopped node again
#   pgha.sh promote DIR                       promote the standby; it then
#                                            commits alone (no standby left)
#   pgha.sh down DIR                          stop both (DIR is the caller's)
# Authentication is trust on loopback: this is a test server. As root the
# servers run as the postgres user (PostgreSQL refuses root), which must own
# DIR.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  echo "usage: $0 up DIR PRIMARY_PORT STANDBY_PORT | stop DIR primary|standby [fast|immediate] | start DIR primary|standby | promote DIR | down DIR" >&2
  exit 2
}

node() {
  [[ $1 == primary || $1 == standby ]] || usage
}

ctl() {
  local dir=$1 node=$2
  shift 2
  as_postgres "$(pg_bindir)/pg_ctl" -D "$dir/$node" "$@"
}

up() {
  local dir=$1 p1=$2 p2=$3 bin
  [[ $p1 =~ ^[0-9]+$ ]] || die "PRIMARY_PORT must be a number, got '$p1'"
  [[ $p2 =~ ^[0-9]+$ ]] || die "STANDBY_PORT must be a number, got '$p2'"
  bin=$(pg_bindir)
  if is_root; then chown postgres: "$dir"; fi
  as_postgres "$bin/initdb" -N -D "$dir/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    die "initdb failed" "$dir/initdb.log"
  cat >"$dir/primary/pg_hba.conf" <<'HBA'
local all         all                trust
host  all         all  127.0.0.1/32  trust
host  replication all  127.0.0.1/32  trust
HBA
  cat >>"$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
max_connections = 200
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
hot_standby = on
synchronous_commit = on
CONF
  ctl "$dir" primary -l "$dir/primary.log" -w -t 60 start >/dev/null || die "starting the primary failed" "$dir/primary.log"
  as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$p1" -U postgres -d postgres >"$dir/bootstrap.log" 2>&1 <<'SQL' ||
SELECT pg_create_physical_replication_slot('standby');
CREATE ROLE sitewatch LOGIN;
CREATE DATABASE sitewatch OWNER sitewatch;
SQL
    die "creating the slot, role and database failed" "$dir/bootstrap.log" "$dir/primary.log"
  as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$dir/standby" -X stream -S standby -R -c fast -N \
    >"$dir/basebackup.log" 2>&1 || die "pg_basebackup failed" "$dir/basebackup.log"
  # Later lines win: the standby's own port and name; once promoted it has
  # no standby of its own to wait for.
  cat >>"$dir/standby/postgresql.conf" <<CONF
port = $p2
cluster_name = 'standby'
synchronous_standby_names = ''
CONF
  ctl "$dir" standby -l "$dir/standby.log" -w -t 60 start >/dev/null || die "starting the standby failed" "$dir/standby.log"
  # Only now: until the standby streams, every commit would wait for it.
  as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$p1" -U postgres -d postgres \
    -c "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()" >>"$dir/bootstrap.log" 2>&1 ||
    die "making the standby synchronous failed" "$dir/bootstrap.log"
  streaming() {
    [[ $(as_postgres "$bin/psql" -X -Atq -h "$dir" -p "$p1" -U postgres -d postgres \
      -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'" 2>/dev/null) == sync ]]
  }
  wait_for 60 streaming || die "the standby does not stream synchronously after 60s" "$dir/standby.log" "$dir/primary.log"
}

stop() {
  local dir=$1 node=$2 mode=${3:-fast}
  [[ $mode == fast || $mode == immediate ]] || usage
  [[ -f $dir/$node/postmaster.pid ]] || return 0
  ctl "$dir" "$node" -m "$mode" -w -t 60 stop >/dev/null
}

start() {
  local dir=$1 node=$2
  ctl "$dir" "$node" -l "$dir/$node.log" -w -t 60 start >/dev/null || die "starting the $node failed" "$dir/$node.log"
}

promote() {
  local dir=$1
  ctl "$dir" standby -w -t 60 promote >/dev/null || die "promoting the standby failed" "$dir/standby.log"
}

case ${1:-} in
  up) [[ $# -eq 4 ]] || usage; up "$2" "$3" "$4" ;;
  stop) [[ $# -eq 3 || $# -eq 4 ]] || usage; node "$3"; stop "$2" "$3" "${4:-fast}" ;;
  start) [[ $# -eq 3 ]] || usage; node "$3"; start "$2" "$3" ;;
  promote) [[ $# -eq 2 ]] || usage; promote "$2" ;;
  down) [[ $# -eq 2 ]] || usage; stop "$2" standby immediate; stop "$2" primary immediate ;;
  *) usage ;;
esac
