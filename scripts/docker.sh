#!/usr/bin/env bash
# A Docker engine, Compose v2 and the base images for sitewatch's containers:
#   docker.sh up       an engine that answers (a running one is used; as root where none runs,
#                      Debian's docker.io is installed and dockerd started by this script), the
#                      Compose v2 and buildx CLI plugins, and every base image the stack names:
#                      pulled where a registry answers, else a stand-in built here from Debian's
#                      packages (deploy/standin/). Prints what it used.
#   docker.sh down     stops dockerd if, and only if, this script started it
#   docker.sh env      exports for the shell: DOCKER_CONFIG (when the plugins are ours) and the
#                      image variables deploy/docker-compose.yml reads
#                      eval "$(scripts/docker.sh env)"; docker compose -f deploy/docker-compose.yml ...
#   docker.sh status   what is in use
# Pinned: Compose $COMPOSE_VERSION and buildx $BUILDX_VERSION, built from their Go modules into .cache/docker.
# SITEWATCH_DOCKER_PULL=0 skips the registry pulls (stand-ins are built at once).
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMPOSE_VERSION=v5.6.0
BUILDX_VERSION=v0.38.2
DDIR=$CACHE/docker
PLUGINS=$DDIR/config/cli-plugins # DOCKER_CONFIG=$DDIR/config when ours are used
DPID=$DDIR/dockerd.pid           # only when this script started dockerd
DLOG=$DDIR/dockerd.log
BLOG=$DDIR/build.log
STANDIN=$REPO/deploy/standin
ENVFILE=$DDIR/images.env # the image choices of the last `up`, for `env`
mkdir -p "$DDIR"

# The images the stack names, as VARIABLE=default; the Dockerfile's build
# images under the SITEWATCH_ names the compose file passes as build args.
IMAGES=(
  SITEWATCH_GO_IMAGE=golang:1.26-bookworm
  SITEWATCH_RUNTIME_IMAGE=gcr.io/distroless/base-debian12:nonroot
  POSTGRES_IMAGE=postgres:17
  KAFKA_IMAGE=apache/kafka:4.4.0
  PROMETHEUS_IMAGE=prom/prometheus:v3.5.0
  GRAFANA_IMAGE=grafana/grafana:11.6.0
)

engine_up() { timeout 20 docker info >/dev/null 2>&1; }

# ours_running: dockerd started by this script is alive.
ours_running() {
  local pid
  pid=$(cat "$DPID" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]
}

start_engine() {
  if engine_up; then
    ours_running && echo "docker engine: started earlier by this script (pid $(cat "$DPID"))" >&2 && return
    echo "docker engine: already running, used as it is" >&2
    rm -f "$DPID"
    return
  fi
  is_root || die "no Docker engine answers and this is not root: start dockerd (or run as root and this script installs Debian's docker.io and starts it)"
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after apt-get install docker.io"
  # A containerd pid file left by an engine that was killed, whose pid
  # another process has since taken, makes dockerd take that process for
  # its containerd and wait for it until it gives up.
  local cpid=/var/run/docker/containerd/containerd.pid
  if [[ -e $cpid && $(cat "/proc/$(cat "$cpid" 2>/dev/null)/comm" 2>/dev/null) != containerd ]]; then
    rm -f "$cpid"
  fi
  echo "docker engine: starting dockerd (log: $DLOG)" >&2
  # Not a child of this shell's lock or terminal: it outlives the script.
  setsid dockerd --pidfile "$DPID" </dev/null >>"$DLOG" 2>&1 9>&- &
  wait_for 60 engine_up || die "dockerd did not answer within 60 s" "$DLOG"
}

stop_engine() {
  ours_running || { echo "docker engine: not started by this script, left alone" >&2; return; }
  local pid
  pid=$(cat "$DPID")
  kill -TERM "$pid"
  # dockerd stops its containers first (their stop timeouts), then exits.
  wait_for 120 bash -c "! kill -0 $pid 2>/dev/null" || die "dockerd ($pid) did not stop within 120 s" "$DLOG"
  rm -f "$DPID"
  echo "docker engine: stopped" >&2
}

# plugin NAME: 0 if `docker NAME version` works without ours.
has_plugin() { env -u DOCKER_CONFIG docker "$1" version >/dev/null 2>&1; }

# build_plugin NAME MODULE VERSION PKG LDFLAGS: go build a CLI plugin from its module's source.
build_plugin() {
  local name=$1 mod=$2 ver=$3 pkg=$4 ldflags=$5 out=$PLUGINS/docker-$1 dir
  [[ -x $out && $(cat "$out.version" 2>/dev/null) == "$ver" ]] && return
  need go golang-go
  local t0=$SECONDS
  echo "building docker-$name $ver from $mod (log: $BLOG)" >&2
  mkdir -p "$PLUGINS"
  dir=$(cd "$DDIR" && GOFLAGS=-mod=mod go mod download -json "$mod@$ver" 2>>"$BLOG" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') ||
    die "downloading $mod@$ver failed" "$BLOG"
  [[ -d $dir ]] || die "no source directory for $mod@$ver" "$BLOG"
  # Inside the module (`go install` refuses compose's exclude directives).
  (cd "$dir" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") >>"$BLOG" 2>&1 ||
    die "building docker-$name failed" "$BLOG"
  mv "$out.tmp" "$out"
  echo "$ver" >"$out.version"
  echo "built docker-$name $ver in $((SECONDS - t0)) s" >&2
}

# plugins: the user's docker compose and buildx when both exist, else ours.
plugins() {
  if has_plugin compose && has_plugin buildx; then
    rm -f "$DDIR/ours"
    return
  fi
  build_plugin compose github.com/docker/compose/v5 "$COMPOSE_VERSION" ./cmd \
    "-X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION"
  build_plugin buildx github.com/docker/buildx "$BUILDX_VERSION" ./cmd/buildx \
    "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION"
  touch "$DDIR/ours"
}

dcfg() { [[ -e $DDIR/ours ]] && echo "DOCKER_CONFIG=$DDIR/config"; }
dk() { env $(dcfg) docker "$@"; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# label IMAGE: the stand-in input hash recorded on IMAGE.
label() { docker image inspect -f '{{index .Config.Labels "org.sitewatch.standin.inputs"}}' "$1" 2>/dev/null || true; }

# base_image: Debian bookworm minbase, debootstrapped from the mirror apt uses.
BASE=sitewatch-standin/debian:bookworm
base_image() {
  have_image "$BASE" && return
  local mirror root=$DDIR/rootfs t0=$SECONDS
  need debootstrap debootstrap
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null | grep -m1 '/debian/$' || true)
  mirror=${mirror:-http://deb.debian.org/debian/}
  echo "building $BASE: debootstrap --variant=minbase bookworm $mirror (log: $BLOG)" >&2
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >>"$BLOG" 2>&1 || die "debootstrap failed" "$BLOG"
  # No package caches or lists in the image; apt in a derived image updates first.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE" >>"$BLOG" 2>&1 ||
    die "docker import of the rootfs failed" "$BLOG"
  rm -rf "$root"
  echo "built $BASE in $((SECONDS - t0)) s" >&2
}

# standin NAME TAG: build deploy/standin/NAME.Dockerfile as TAG unless TAG was built from the same
# inputs (NAME.Dockerfile, the NAME-* files beside it, and what is copied in), recorded as a label.
# The context is those files plus what NAME needs from this machine, assembled in .cache.
standin() {
  local name=$1 tag=$2 ctx=$DDIR/ctx/$1 extra= sum f t0=$SECONDS
  case $name in
    golang) extra="$(go env GOVERSION) $(sha256sum </etc/ssl/certs/ca-certificates.crt)" ;;
    kafka)
      # The Kafka distribution scripts/kafka.sh fetches from Maven Central.
      [[ -f $CACHE/kafka/libs/.complete && -f $CACHE/kafka/tools/.complete ]] || "$SCRIPTS/kafka.sh" jars
      extra=$(cat "$CACHE/kafka/libs/.complete" "$CACHE/kafka/tools/.complete") ;;
  esac
  local -a files=("$STANDIN/$name.Dockerfile")
  for f in "$STANDIN/$name"-*; do [[ -f $f ]] && files+=("$f"); done
  sum=$({ (cd "$STANDIN" && sha256sum "${files[@]##*/}"); echo "$extra"; } | sha256sum | cut -c1-16)
  if have_image "$tag" && [[ $(label "$tag") == "$sum" ]]; then return; fi
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -a "${files[@]}" "$ctx/"
  case $name in
    golang)
      # The machine's Go toolchain and CA bundle: the module proxy is trusted with this
      # machine's bundle only (a stock Debian one is refused here).
      cp -a "$(go env GOROOT)" "$ctx/go"
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt" ;;
    kafka)
      cp -a "$CACHE/kafka/libs" "$ctx/libs"
      cp -a "$CACHE/kafka/tools" "$ctx/tools" ;;
  esac
  echo "building stand-in $tag (deploy/standin/$name.Dockerfile, log: $BLOG)" >&2
  dk build -f "$ctx/$name.Dockerfile" --build-arg "BASE_IMAGE=$BASE" \
    --label "org.sitewatch.standin.inputs=$sum" -t "$tag" "$ctx" >>"$BLOG" 2>&1 ||
    die "building $tag failed" "$BLOG"
  rm -rf "$ctx"
  echo "built $tag in $((SECONDS - t0)) s" >&2
}

# images: for each image of the stack, the image itself when present or pullable, else its stand-in.
images() {
  local pair var want got stand name
  : >"$ENVFILE.tmp"
  for pair in "${IMAGES[@]}"; do
    var=${pair%%=*} want=${pair#*=}
    case $var in
      SITEWATCH_GO_IMAGE) name=golang stand=sitewatch-standin/golang:1.26-bookworm ;;
      SITEWATCH_RUNTIME_IMAGE) name=runtime stand=sitewatch-standin/distroless-base:debian12-nonroot ;;
      POSTGRES_IMAGE) name=postgres stand=sitewatch-standin/postgres:15 ;;
      KAFKA_IMAGE) name=kafka stand=sitewatch-standin/kafka:4.4.0 ;;
      PROMETHEUS_IMAGE) name=prometheus stand=sitewatch-standin/prometheus:debian ;;
      GRAFANA_IMAGE) name= stand= ;;
    esac
    if have_image "$want" || { [[ ${SITEWATCH_DOCKER_PULL:-1} != 0 ]] && timeout 300 docker pull -q "$want" >>"$BLOG" 2>&1; }; then
      got=$want
      echo "image $want: used as published" >&2
    elif [[ -z $stand ]]; then
      echo "image $want: cannot be pulled and has no stand-in (Debian ships no $want); its service is left out" >&2
      continue
    else
      base_image
      standin "$name" "$stand"
      got=$stand
      echo "image $want: cannot be pulled; stand-in $stand built here from Debian's packages" >&2
    fi
    printf '%s=%s\n' "$var" "$got" >>"$ENVFILE.tmp"
  done
  mv "$ENVFILE.tmp" "$ENVFILE"
}

versions() {
  echo "docker engine $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null), client $(docker version -f '{{.Client.Version}}' 2>/dev/null)" >&2
  echo "compose $(dk compose version --short 2>/dev/null), buildx $(dk buildx version 2>/dev/null | awk '{print $2}')$([[ -e $DDIR/ours ]] && echo " (built here: $PLUGINS)")" >&2
}

case ${1:-} in
  up)
    lock "$DDIR/up.lock"
    need docker docker.io
    start_engine
    plugins
    images
    versions
    ;;
  down) stop_engine ;;
  env)
    [[ -f $ENVFILE ]] || die "run scripts/docker.sh up first"
    [[ -e $DDIR/ours ]] && echo "export DOCKER_CONFIG='$DDIR/config'"
    while IFS='=' read -r var val; do echo "export $var='$val'"; done <"$ENVFILE"
    ;;
  status)
    engine_up || die "no Docker engine answers"
    versions
    [[ -f $ENVFILE ]] && cat "$ENVFILE"
    ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
