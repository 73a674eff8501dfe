#!/usr/bin/env bash
# The secrets of the compose stack, as files (Docker secrets):
#   secrets.sh [DIR]   (default deploy/secrets, ignored by git)
# writes a random password per database role (postgres_password for the owner,
# {monitor,relay,sink}_db_password), the DATABASE_URL each service reads from
# {migrate,monitor,relay,sink}_database_url, the status page's token
# (sink_ui_token), Grafana's admin password and the SASL password of the
# `secure` profile (kafka_sasl_password, shared with scripts/tls.sh).
# Existing files are kept, so the database keeps matching: delete DIR (and
# the pgdata volume) to start over. The directory is 0700; the files are
# 0644 because the containers read them as their own users (postgres,
# 65532), and a file secret is mounted with its host permissions.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || { echo "usage: $0 [DIR]" >&2; exit 2; }
DIR=${1:-$REPO/deploy/secrets}
DB=${POSTGRES_DB:-sitewatch}
OWNER=${POSTGRES_USER:-sitewatch}
[[ $DB =~ ^[a-z_][a-z0-9_]*$ && $OWNER =~ ^[a-z_][a-z0-9_]*$ ]] ||
  die "POSTGRES_DB and POSTGRES_USER: lower-case letters, digits and _ only (they go into URLs)"
need openssl openssl
mkdir -p "$DIR"
chmod 0700 "$DIR"

# secret NAME [LENGTH]: a random hex string, URL-safe, unless NAME exists.
secret() {
  local f=$DIR/$1
  [[ -s $f ]] || { openssl rand -hex "${2:-24}" | tr -d '\n' >"$f.tmp" && mv "$f.tmp" "$f"; }
  chmod 0644 "$f"
}

# url NAME ROLE PASSWORD_FILE: the DATABASE_URL of a service, in the compose network.
url() {
  printf 'postgres://%s:%s@postgres:5432/%s?sslmode=disable' "$2" "$(cat "$DIR/$3")" "$DB" >"$DIR/$1"
  chmod 0644 "$DIR/$1"
}

secret postgres_password
url migrate_database_url "$OWNER" postgres_password
for svc in monitor relay sink; do
  secret "${svc}_db_password"
  url "${svc}_database_url" "sitewatch_$svc" "${svc}_db_password"
done
secret sink_ui_token 32
secret grafana_admin_password 16
secret kafka_sasl_password
echo "secrets in $DIR (status page: any user, password $DIR/sink_ui_token)" >&2
