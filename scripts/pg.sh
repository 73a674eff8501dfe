#!/usr/bin/env bash
# Dedicated PostgreSQL for sitewatch dev/test: pg.sh up|down|status|url
#   root:     Debian cluster "<ver>/sitewatch" (pg_createcluster/pg_ctlcluster, runs as user postgres)
#   non-root: initdb into $REPO/.cache/pg/data, pg_ctl as the current user
#   DATABASE_URL set: never start anything, just use/wait for that server.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${SITEWATCH_PG_PORT:-55432}
CLUSTER=sitewatch
URL=${DATABASE_URL:-postgres://sitewatch:sitewatch@127.0.0.1:$PORT/sitewatch?sslmode=disable}
EXTERNAL=${DATABASE_URL:+1}
LOG=$CACHE/pg.log           # our own command log (pg_createcluster, psql bootstrap, ...)
DATA=$CACHE/pg/data         # non-root mode only
VER=
export PGCONNECT_TIMEOUT=5  # never hang on a dead/unreachable server
[[ $PORT =~ ^[0-9]+$ ]] || die "SITEWATCH_PG_PORT must be a number, got '$PORT'"

answers() { psql -X "$URL" -Atqc 'select 1' >/dev/null 2>&1; }

# Major version: an existing sitewatch cluster wins, else the newest installed server.
pg_version() {
  local d
  for d in /etc/postgresql/*/"$CLUSTER"/postgresql.conf; do
    [[ -f $d ]] && { basename "$(dirname "$(dirname "$d")")"; return; }
  done
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)
  if [[ -x $d ]]; then basename "$(dirname "$(dirname "$d")")"; fi
}

# Settings we own; rewritten on every cold `up` so changes (e.g. port) apply.
settings() {
  cat <<EOF
# managed by scripts/pg.sh -- overwritten on every start
port = $PORT
listen_addresses = '127.0.0.1'
max_connections = 300
# The sink's working set at 50,000 checks/s (today's stats partition and its
# indexes, the recent rollups) outgrows 256MB: backends then write out dirty
# pages themselves (608 MB in one BenchmarkSinkPreloaded run). 1GB measured
# 4-9 % more rows/s, run for run (README, Benchmarks, Sink).
shared_buffers = 1GB
# An outbox churns (insert, flip, delete): let autovacuum look every 10 s, not
# every minute, as the README advises for a busy outbox (make soak shows why).
autovacuum_naptime = 10s
EOF
}

# Idempotently create role + database; "$@" is a psql command connected as superuser.
bootstrap() {
  "$@" -X -q -v ON_ERROR_STOP=1 -d postgres >>"$LOG" 2>&1 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch') THEN
    CREATE ROLE sitewatch LOGIN CREATEDB PASSWORD 'sitewatch';
  ELSE
    ALTER ROLE sitewatch LOGIN CREATEDB PASSWORD 'sitewatch';
  END IF;
END $$;
SELECT 'CREATE DATABASE sitewatch OWNER sitewatch'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'sitewatch') \gexec
-- One login role per service (dev passwords: the role's name); sitewatch,
-- the owner, migrates and grants them their privileges (db/grants.sql).
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', r, r)
  FROM unnest(ARRAY['sitewatch_monitor', 'sitewatch_relay', 'sitewatch_sink']) r
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
SQL
}

# The services' roles exist (a cluster made before they were added lacks them).
have_roles() {
  [[ $(psql -X "$URL" -Atqc "SELECT count(*) FROM pg_roles WHERE rolname IN ('sitewatch_monitor', 'sitewatch_relay', 'sitewatch_sink')" 2>/dev/null) == 3 ]]
}

# Mode-specific primitives; $VER is set by up()/down().
if is_root; then
  SOCK=/var/run/postgresql
  srvlog() { echo "/var/log/postgresql/postgresql-$VER-$CLUSTER.log"; }
  running() { pg_ctlcluster "$VER" "$CLUSTER" status >/dev/null 2>&1; }
  superuser_psql() { (cd / && runuser -u postgres -- psql -h "$SOCK" -p "$PORT" "$@"); }  # peer auth
  stop() { pg_ctlcluster "$VER" "$CLUSTER" stop; }
  start() {
    local conf=/etc/postgresql/$VER/$CLUSTER
    if [[ ! -f $conf/postgresql.conf ]]; then
      pg_createcluster --start-conf=manual --locale=C.UTF-8 -p "$PORT" "$VER" "$CLUSTER" || return
    fi
    mkdir -p "$conf/conf.d" && settings >"$conf/conf.d/sitewatch.conf"
    pg_ctlcluster "$VER" "$CLUSTER" start
  }
else
  SOCK=$DATA  # /var/run/postgresql is not writable for normal users; data dir is 0700
  srvlog() { echo "$CACHE/pg/server.log"; }
  pgbin() { echo "/usr/lib/postgresql/$VER/bin/$1"; }
  running() { [[ -f $DATA/PG_VERSION ]] && "$(pgbin pg_ctl)" -D "$DATA" status >/dev/null 2>&1; }
  superuser_psql() { psql -h "$SOCK" -p "$PORT" -U postgres "$@"; }
  stop() { "$(pgbin pg_ctl)" -D "$DATA" -m fast -w stop; }
  start() {
    if [[ ! -f $DATA/PG_VERSION ]]; then
      rm -rf "$DATA" && mkdir -p "$DATA"
      "$(pgbin initdb)" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 || return
      echo "include_if_exists = 'sitewatch.conf'" >>"$DATA/postgresql.conf"
    fi
    { settings; echo "unix_socket_directories = '$SOCK'"; } >"$DATA/sitewatch.conf"
    "$(pgbin pg_ctl)" -D "$DATA" -l "$(srvlog)" -w -t 60 start
  }
fi
ready() { pg_isready -q -h "$SOCK" -p "$PORT"; }
# A postmaster killed a moment ago can still look alive (zombie PID in postmaster.pid), and
# one that is starting/recovering is alive but not ready: wait until it is clearly one or the other.
settled() { ready || ! running; }

up() {
  if [[ -n $EXTERNAL ]]; then
    need psql postgresql-client
    wait_for 60 answers || die "DATABASE_URL does not answer: $(psql -X "$URL" -c 'select 1' 2>&1 | tail -n 3)"
    return
  fi
  command -v psql >/dev/null 2>&1 && answers && have_roles && return 0   # warm: fast no-op
  lock "$CACHE/pg.lock"
  answers && have_roles && return 0                          # someone else just started it
  : >"$LOG"
  VER=$(pg_version)
  if [[ -z $VER ]] || ! command -v psql >/dev/null 2>&1; then
    is_root || die "PostgreSQL server not found; please install it: sudo apt-get install postgresql"
    apt_install postgresql postgresql-client
    VER=$(pg_version)
    [[ -n $VER ]] || die "no PostgreSQL server under /usr/lib/postgresql after install"
  fi
  wait_for 60 settled || die "postgres $VER/$CLUSTER looks alive but is not ready after 60s" "$(srvlog)"
  if ! ready; then
    start >>"$LOG" 2>&1 9>&- || die "starting postgres $VER/$CLUSTER failed" "$LOG" "$(srvlog)"
  fi
  bootstrap superuser_psql || die "creating role/database sitewatch failed" "$LOG" "$(srvlog)"
  wait_for 60 answers || die "postgres on port $PORT does not answer as sitewatch" "$LOG" "$(srvlog)"
}

down() {
  [[ -z $EXTERNAL ]] || return 0   # not ours to stop
  lock "$CACHE/pg.lock"
  VER=$(pg_version)
  [[ -n $VER ]] && running || return 0
  stop >>"$LOG" 2>&1 || die "stopping postgres $VER/$CLUSTER failed" "$LOG" "$(srvlog)"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) command -v psql >/dev/null 2>&1 && answers || exit 1 ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
