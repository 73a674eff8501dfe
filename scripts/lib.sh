# shellcheck shell=bash
# Shared helpers for scripts/*.sh (sourced, never executed directly).
# Convention: quiet on success; on failure say what broke, show log tails, exit 1.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$REPO/.cache
# shellcheck disable=SC2034 # used by the sourcing scripts
SCRIPTS=$REPO/scripts
mkdir -p "$CACHE"

# die MSG [LOG...]: loud failure with the last 40 lines of each non-empty log.
die() {
  local msg=$1 f
  shift
  echo "ERROR ($(basename "$0")): $msg" >&2
  for f in "$@"; do
    [[ -s $f ]] || continue
    echo "----- last 40 lines of $f -----" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# as_postgres CMD...: run CMD as the user of the servers our scripts start:
# postgres as root (PostgreSQL and PgBouncer refuse root), else ourselves.
as_postgres() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_bindir: the newest installed PostgreSQL's bin directory.
pg_bindir() {
  local b
  b=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)
  [[ -x $b ]] || die "no PostgreSQL server under /usr/lib/postgresql (scripts/pg.sh up installs it)"
  dirname "$b"
}

# lock FILE: serialise concurrent runs of the same script via fd 9.
# Daemons we spawn must get `9>&-` so they do not inherit (and hold) the lock.
lock() {
  exec 9>"$1"
  flock -w 600 9 || die "timed out waiting for lock $1"
}

# apt_install PKG...: root only. Runs `apt-get update` once per process, and
# serialises with sibling scripts (infra.sh runs pg.sh and kafka.sh in parallel).
APT_UPDATED=
apt_install() {
  local log=$CACHE/apt.log
  echo "installing $* via apt-get (log: $log)" >&2
  if ! (
    flock -w 900 8 || exit 1
    export DEBIAN_FRONTEND=noninteractive
    [[ -n $APT_UPDATED ]] || apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
  ) 8>"$CACHE/apt.lock" >>"$log" 2>&1; then
    die "apt-get install $* failed" "$log"
  fi
  APT_UPDATED=1
}

# need CMD PKG...: ensure CMD is on PATH; install PKG... as root, else tell the user.
need() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  is_root || die "'$cmd' not found; please install it: sudo apt-get install $*"
  apt_install "$@"
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after apt-get install $*"
}

# tcp_open HOST PORT: true if a TCP connect succeeds within 2s (bash /dev/tcp, no nc needed).
tcp_open() {
  # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# port_busy PORT: a listener holds local TCP port PORT on 127.0.0.1, or a connection
# has it as its local end (a port in the ephemeral range, net.ipv4.ip_local_port_range,
# can be handed to any client); either way a server cannot bind it.
port_busy() {
  tcp_open 127.0.0.1 "$1" && return 0
  command -v ss >/dev/null || return 1
  [[ -n $(ss -Htan state established state syn-sent "( sport = :$1 )" 2>/dev/null) ]]
}

# wait_for SECONDS CMD...: poll CMD every 0.5s until it succeeds or time runs out.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
