#!/bin/sh
# Runs once, when the postgres container initialises an empty data
# directory: one login role per sitewatch service. The owner role
# (POSTGRES_USER) runs the migrations, owns the tables and grants these
# roles exactly what their service needs (db/grants.sql, on every migrate).
# Each password comes from SITEWATCH_<SERVICE>_DB_PASSWORD_FILE (a Docker
# secret, as compose gives it) or SITEWATCH_<SERVICE>_DB_PASSWORD.
# For a database initialised before this script existed, run the same
# statements with psql as a superuser, then `monitor migrate` again.
set -eu
for svc in monitor relay sink; do
  var=$(echo "SITEWATCH_${svc}_DB_PASSWORD" | tr a-z A-Z)
  eval "file=\${${var}_FILE:-}"
  if [ -n "$file" ]; then
    password=$(cat "$file") || { echo "roles.sh: ${var}_FILE: cannot read $file" >&2; exit 1; }
  else
    eval "password=\${$var:-}"
  fi
  if [ -z "$password" ]; then
    echo "roles.sh: neither ${var}_FILE nor $var is set (or the password is empty)" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v role="sitewatch_$svc" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SQL
done
