#!/usr/bin/env bash
# bench-before.sh [BASE] [RUNS]: the relay's throughput benchmark
# (BenchmarkRelayThroughput, 500,000 rows; SITEWATCH_BENCH_ROWS changes it)
# of commit BASE (62cfdc3, the code before issue 22) and of this checkout,
# one after the other RUNS times (3) on the same PostgreSQL and Kafka, so
# that the two are compared on the machine as it is at the time: runs here
# vary by a third from one hour to the next. BASE's benchmark is patched
# (bench-before.patch) to see the end of the drain as today's does, by the
# relay's own count of published rows: its count of waiting rows every 50 ms
# competed with the relay for the database. Needs the repository's history
# and the infrastructure's env (make bench-before sets both up).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BASE=${1:-62cfdc3}
RUNS=${2:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS: $RUNS: want a whole number of runs, 1 or more"
git -C "$REPO" rev-parse -q --verify "$BASE^{commit}" >/dev/null ||
  die "BASE: $BASE: no such commit in this clone (a shallow clone lacks it: git fetch --unshallow)"
[[ -n ${DATABASE_URL:-} && -n ${KAFKA_BROKERS:-} ]] || die 'DATABASE_URL and KAFKA_BROKERS are unset: eval "$(scripts/infra.sh env)" first'

WORK=$(mktemp -d)
LOG=$CACHE/bench-before.log
: >"$LOG"
cleanup() {
  git -C "$REPO" worktree remove --force "$WORK/base" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
git -C "$REPO" worktree add -q --detach "$WORK/base" "$BASE" || die "checking out $BASE"
git -C "$WORK/base" apply "$SCRIPTS/bench-before.patch" || die "patching $BASE's benchmark (bench-before.patch is for 62cfdc3's)"
(cd "$WORK/base/services/relay" && go test -c -o "$WORK/base.test" ./internal/relay) || die "building $BASE's benchmark"
(cd "$REPO/services/relay" && go test -c -o "$WORK/head.test" ./internal/relay) || die "building this checkout's benchmark"

# rate BINARY DIR PATTERN: rows/s of the first line of the benchmark's
# output that matches PATTERN, the whole output appended to $LOG.
rate() {
  (cd "$2" && "$1" -test.run '^$' -test.bench 'RelayThroughput$' -test.benchtime 1x -test.timeout 30m) >"$WORK/run" 2>&1 ||
    die "the benchmark of $2 failed" "$WORK/run"
  cat "$WORK/run" >>"$LOG"
  grep -m1 -E "$3" "$WORK/run" | sed -E 's/.* rows: ([0-9]+) rows\/s.*/\1/'
}

printf '%-4s %14s %14s %8s\n' run "$BASE" "this checkout" ratio
for i in $(seq "$RUNS"); do
  before=$(rate "$WORK/base.test" "$WORK/base/services/relay/internal/relay" '^relay: [0-9]+ rows:')
  now=$(rate "$WORK/head.test" "$REPO/services/relay/internal/relay" '^relay, partitioned: [0-9]+ rows:')
  printf '%-4s %14s %14s %8s\n' "$i" "$before rows/s" "$now rows/s" "$(awk -v a="$now" -v b="$before" 'BEGIN { printf "%.2fx", a / b }')"
done
echo "(both benchmarks' whole output, ceilings and CPU per row included: $LOG)"
