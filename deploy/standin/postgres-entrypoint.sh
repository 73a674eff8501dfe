#!/bin/bash
# The stand-in postgres image's entrypoint (deploy/standin/postgres.Dockerfile):
# as the official image does, it initialises an empty $PGDATA once (owner
# POSTGRES_USER with the password of POSTGRES_PASSWORD or the file
# POSTGRES_PASSWORD_FILE names, database POSTGRES_DB, password logins over
# TCP, trust on the Unix socket inside the container), runs the
# /docker-entrypoint-initdb.d scripts against a server that listens on the
# socket only, then runs the server as user postgres on every interface.
set -euo pipefail

if [[ ${1:-} != postgres ]]; then exec "$@"; fi

if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# file_env VAR: VAR from VAR_FILE when that is set (not both).
file_env() {
  local var=$1 file_var=${1}_FILE
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    echo "docker-entrypoint: set $var or $file_var, not both" >&2; exit 1
  fi
  if [[ -n ${!file_var:-} ]]; then
    [[ -r ${!file_var} ]] || { echo "docker-entrypoint: $file_var: cannot read ${!file_var}" >&2; exit 1; }
    export "$var"="$(<"${!file_var}")"
  fi
}

file_env POSTGRES_PASSWORD
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  [[ -n ${POSTGRES_PASSWORD:-} ]] || {
    echo "docker-entrypoint: the database is uninitialised and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set" >&2
    exit 1
  }
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >/dev/null
  export PGHOST=/var/run/postgresql PGPORT=5432
  if [[ $POSTGRES_DB != postgres ]]; then
    psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname postgres \
      -v db="$POSTGRES_DB" <<<"CREATE DATABASE :\"db\";"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case $f in
      *.sh)
        if [[ -x $f ]]; then echo "docker-entrypoint: running $f"; "$f"
        else echo "docker-entrypoint: sourcing $f"; . "$f"; fi ;;
      *.sql) echo "docker-entrypoint: running $f"
        psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) echo "docker-entrypoint: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  unset PGHOST PGPORT
  echo "docker-entrypoint: PostgreSQL init process complete; ready for start up"
fi

unset POSTGRES_PASSWORD
exec postgres -c listen_addresses='*' "${@:2}"
