#!/usr/bin/env bash
# A private PostgreSQL that accepts TCP connections only over TLS, for the
# secure-connection tests and for trying verify-full by hand:
#   pgtls.sh up DIR PORT   DIR holds server.crt, server.key (for the host
#                          names clients use, e.g. localhost) and ca.pem (the
#                          CA of client certificates); the cluster goes in
#                          DIR/data, listening on localhost:PORT
#   pgtls.sh down DIR      stop it (the directory is the caller's to remove)
# pg_hba: role certuser only with a client certificate (method cert), every
# other role over TLS (trust: this is a test server); no plaintext TCP.
# As root the server runs as the postgres user (PostgreSQL refuses root).
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { echo "usage: $0 up DIR PORT | down DIR" >&2; exit 2; }

up() {
  local dir=$1 port=$2 bin f
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  for f in server.crt server.key ca.pem; do
    [[ -f $dir/$f ]] || die "$dir/$f is missing"
  done
  bin=$(pg_bindir)
  chmod 0600 "$dir/server.key" # the server refuses a key others can read
  if is_root; then chown -R postgres: "$dir"; fi
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    die "initdb failed" "$dir/initdb.log"
  cat >"$dir/data/pg_hba.conf" <<'HBA'
local   all  all                trust
hostssl all  certuser 127.0.0.1/32 cert
hostssl all  certuser ::1/128      cert
hostssl all  all      127.0.0.1/32 trust
hostssl all  all      ::1/128      trust
HBA
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = 'localhost'
port = $port
unix_socket_directories = '$dir'
fsync = off
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
ssl_ca_file = '$dir/ca.pem'
CONF
  if is_root; then chown postgres: "$dir/data/pg_hba.conf" "$dir/data/postgresql.conf"; fi
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || die "starting the TLS PostgreSQL failed" "$dir/server.log"
  as_postgres "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -c 'CREATE ROLE certuser LOGIN' >/dev/null ||
    die "creating role certuser failed" "$dir/server.log"
}

down() {
  local dir=$1
  [[ -f $dir/data/postmaster.pid ]] || return 0
  as_postgres "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case ${1:-} in
  up) [[ $# -eq 3 ]] || usage; up "$2" "$3" ;;
  down) [[ $# -eq 2 ]] || usage; down "$2" ;;
  *) usage ;;
esac
