#!/usr/bin/env bash
# Dev/test infrastructure for sitewatch (PostgreSQL + Kafka): infra.sh up|down|env
#   eval "$(scripts/infra.sh env)"   -> exports DATABASE_URL and KAFKA_BROKERS
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# run_both ACTION: pg.sh and kafka.sh in parallel; report each failure with its own stderr.
run_both() {
  local tmp rc=0 s
  local -A pids
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  for s in pg kafka; do
    "$SCRIPTS/$s.sh" "$1" 2>"$tmp/$s.err" &
    pids[$s]=$!
  done
  for s in pg kafka; do
    if ! wait "${pids[$s]}"; then
      echo "ERROR (infra.sh): scripts/$s.sh $1 failed" >&2
      cat "$tmp/$s.err" >&2
      rc=1
    else
      cat "$tmp/$s.err" >&2   # pass through warnings, if any
    fi
  done
  return "$rc"
}

# Single-quote for eval: ' -> '\''
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

case ${1:-} in
  up)
    need openssl openssl # the tests make their TLS certificates with it
    run_both up
    ;;
  down)
    run_both down
    # The three-node cluster the cluster tests start (kafka.sh cluster), if they did.
    [[ -n ${KAFKA_BROKERS:-} || ! -d $CACHE/kafka/cluster ]] || "$SCRIPTS/kafka.sh" cluster down
    ;;
  env)
    echo "export DATABASE_URL=$(sq "$("$SCRIPTS/pg.sh" url)")"
    echo "export KAFKA_BROKERS=$(sq "$("$SCRIPTS/kafka.sh" brokers)")"
    ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
