#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) for sitewatch dev/test.
#   kafka.sh up|down|status|brokers      lifecycle; state lives in $REPO/.cache/kafka
#   kafka.sh jars                        only fetch the jars (broker: .cache/kafka/libs, tools: .cache/kafka/tools)
#   kafka.sh topics ARGS...              kafka-topics (TopicCommand) against our broker
# Secure listeners (tests start such a broker privately, beside the shared one):
#   SITEWATCH_KAFKA_TLS_DIR=DIR          DIR holds ca.pem, broker.crt, broker.key (PKCS#8, unencrypted);
#                                        opens SASL_SSL on SITEWATCH_KAFKA_SASL_SSL_PORT (PORT+2) and
#                                        SSL requiring a client certificate on SITEWATCH_KAFKA_SSL_PORT
#                                        (PORT+3), both advertised as SITEWATCH_KAFKA_TLS_HOST (localhost)
#   SITEWATCH_KAFKA_SASL_USERS=u:p,...   users of SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
# A node of a cluster (kafka.sh cluster ... sets these for each of its nodes):
#   SITEWATCH_KAFKA_NODE_ID=N            node.id (default 1)
#   SITEWATCH_KAFKA_VOTERS=1@h:p,...     the static controller quorum; the storage is then
#   SITEWATCH_KAFKA_CLUSTER_ID=ID        formatted with this shared id instead of --standalone
# Three nodes (broker and controller each) on loopback, state under .cache/kafka/cluster/:
#   kafka.sh cluster up|down|status|brokers|pids|leader   brokers on SITEWATCH_KAFKA_CLUSTER_PORT (19192),
#                                        +100 and +200; each node's controller on its port+1. Below
#                                        the ephemeral range (32768-60999): a client retrying a dead
#                                        node there can connect to itself and hold the port it needs
#   kafka.sh pid                         the broker's PID (tests kill or stop it)
# Jars come from Maven Central via scripts/kafka/pom.xml (no tarball download needed).
# KAFKA_BROKERS set: never start anything, just wait for / report that cluster.
set -euo pipefail
# shellcheck source=scripts/lib.sh source-path=SCRIPTDIR/..
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${SITEWATCH_KAFKA_PORT:-59092}
CPORT=${SITEWATCH_KAFKA_CONTROLLER_PORT:-59093}
BROKERS=${KAFKA_BROKERS:-127.0.0.1:$PORT}
EXTERNAL=${KAFKA_BROKERS:+1}
KDIR=$CACHE/kafka
LIBS=$KDIR/libs           # broker classpath
TOOLS=$KDIR/tools         # CLI tools classpath (kafka-tools)
# State of this broker instance; tests that stop a broker point this (and
# the ports) elsewhere to run a second, private one beside the shared one.
SDIR=${SITEWATCH_KAFKA_STATE:-$KDIR}
DATA=$SDIR/data
LOGS=$SDIR/logs
PROPS=$SDIR/server.properties
PIDFILE=$SDIR/kafka.pid
POM=$SCRIPTS/kafka/pom.xml
SETUP_LOG=$SDIR/setup.log # mvn, storage format and readiness-probe output
TLS_DIR=${SITEWATCH_KAFKA_TLS_DIR:-}
SASL_SSL_PORT=${SITEWATCH_KAFKA_SASL_SSL_PORT:-$((PORT + 2))}
SSL_PORT=${SITEWATCH_KAFKA_SSL_PORT:-$((PORT + 3))}
TLS_HOST=${SITEWATCH_KAFKA_TLS_HOST:-localhost}
SASL_USERS=${SITEWATCH_KAFKA_SASL_USERS:-}
NODE_ID=${SITEWATCH_KAFKA_NODE_ID:-1}
VOTERS=${SITEWATCH_KAFKA_VOTERS:-}
CLUSTER_ID=${SITEWATCH_KAFKA_CLUSTER_ID:-}
CLUSTER_PORT=${SITEWATCH_KAFKA_CLUSTER_PORT:-19192}
[[ $NODE_ID =~ ^[0-9]+$ && $CLUSTER_PORT =~ ^[0-9]+$ ]] || die "SITEWATCH_KAFKA_NODE_ID / SITEWATCH_KAFKA_CLUSTER_PORT must be numbers"
[[ -z $VOTERS || -n $CLUSTER_ID ]] || die "SITEWATCH_KAFKA_VOTERS needs SITEWATCH_KAFKA_CLUSTER_ID (the nodes of a cluster share it)"
[[ $PORT =~ ^[0-9]+$ && $CPORT =~ ^[0-9]+$ ]] || die "SITEWATCH_KAFKA_PORT / SITEWATCH_KAFKA_CONTROLLER_PORT must be numbers"
[[ $SASL_SSL_PORT =~ ^[0-9]+$ && $SSL_PORT =~ ^[0-9]+$ ]] || die "SITEWATCH_KAFKA_SASL_SSL_PORT / SITEWATCH_KAFKA_SSL_PORT must be numbers"

# is_ours PID: PID is our broker (checked via cmdline, so a recycled PID never fools us).
is_ours() {
  local -a argv
  mapfile -d '' argv 2>/dev/null <"/proc/$1/cmdline" || return 1
  [[ " ${argv[*]} " == *" kafka.Kafka $PROPS "* ]]
}
gone() { ! is_ours "$1"; }
# running PID: PID is our broker, asked again 0.2 s later before saying no: while the
# launcher's bash execs the JVM, /proc/PID/cmdline can read empty for an instant (a
# clean-clone make test once failed "Kafka (pid ) exited during startup" with the JVM up).
running() { is_ours "$1" || { sleep 0.2; is_ours "$1"; }; }

# broker_pid: print our live broker's PID; falls back to scanning /proc if the pid file is stale/lost.
broker_pid() {
  local pid p
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid"; then echo "$pid"; return; fi
  for p in /proc/[0-9]*; do
    if is_ours "${p#/proc/}"; then echo "${p#/proc/}" | tee "$PIDFILE"; return; fi
  done
  return 1
}

# Short-lived JVM for CLI tools (small heap, fast start); append -cp DIR/* CLASS ARGS.
KJAVA=(java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC
  -Dlog4j2.configurationFile="$SCRIPTS/kafka/tools-log4j2.properties")

need_java() {
  need java openjdk-17-jre-headless
  local v
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "Kafka needs Java >= 17, but 'java' on PATH is '$v'"
  fi
}

# Fetch broker and tools jars unless both dirs carry a marker matching the current pom.
fetch_jars() {
  local want pair prof dir
  want="kafka.version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM") pom.sha256=$(sha256sum <"$POM" | cut -d' ' -f1)"
  [[ $(cat "$LIBS/.complete" 2>/dev/null) == "$want" && $(cat "$TOOLS/.complete" 2>/dev/null) == "$want" ]] && return
  need mvn maven
  for pair in broker:"$LIBS" tools:"$TOOLS"; do
    prof=${pair%%:*} dir=${pair#*:}
    rm -rf "$dir.tmp"
    mvn -B -q -Dstyle.color=never -f "$POM" -P "$prof" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$dir.tmp" >>"$SETUP_LOG" 2>&1 || die "mvn could not fetch the Kafka $prof jars" "$SETUP_LOG"
    echo "$want" >"$dir.tmp/.complete"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"   # swap in only complete dirs
  done
}

render_config() {
  local t
  t=$(<"$SCRIPTS/kafka/server.properties.in")
  t=${t//@PORT@/$PORT}
  t=${t//@CONTROLLER_PORT@/$CPORT}
  t=${t//@DATA_DIR@/$DATA}
  if [[ -n $VOTERS ]]; then
    # A node of a cluster: its id, and the static quorum instead of bootstrap servers.
    t=${t//node.id=1/node.id=$NODE_ID}
    t=${t//controller.quorum.bootstrap.servers=127.0.0.1:$CPORT/controller.quorum.voters=$VOTERS}
  fi
  printf '%s\n' "$t" >"$PROPS"
  [[ -z $VOTERS ]] || cluster_config >>"$PROPS"
  [[ -z $TLS_DIR ]] || secure_config >>"$PROPS"
}

# cluster_config: what a cluster of three needs: internal topics and new
# topics on three replicas, two of them in sync for a write (later keys win
# over the template's).
cluster_config() {
  cat <<EOF

# ----- a node of a cluster (SITEWATCH_KAFKA_VOTERS) -----
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
EOF
}

# secure_config: the SASL_SSL and SSL (client certificate required) listeners beside
# PLAINTEXT, which stays for the readiness probe and the broker's own traffic.
secure_config() {
  local f u jaas=
  for f in ca.pem broker.crt broker.key; do
    [[ -s $TLS_DIR/$f ]] || die "SITEWATCH_KAFKA_TLS_DIR=$TLS_DIR has no $f"
  done
  cat "$TLS_DIR/broker.key" "$TLS_DIR/broker.crt" >"$SDIR/broker-keystore.pem"
  chmod 600 "$SDIR/broker-keystore.pem"
  for u in ${SASL_USERS//,/ }; do
    jaas+=" user_${u%%:*}=\"${u#*:}\""
  done
  cat <<EOF

# ----- secure listeners (SITEWATCH_KAFKA_TLS_DIR) -----
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_SSL://127.0.0.1:$SASL_SSL_PORT,SSL://127.0.0.1:$SSL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT,SASL_SSL://$TLS_HOST:$SASL_SSL_PORT,SSL://$TLS_HOST:$SSL_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
ssl.keystore.type=PEM
ssl.keystore.location=$SDIR/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$jaas;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
}

# Format storage once. Without meta.properties nothing valid can be in there, so start clean.
format_storage() {
  [[ -f $DATA/meta.properties ]] && return
  local id
  rm -rf "$DATA"
  id=$("${KJAVA[@]}" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$SETUP_LOG") || die "StorageTool random-uuid failed" "$SETUP_LOG"
  # SCRAM credentials live in the cluster metadata: written at format time.
  local -a scram=()
  local u m
  for u in ${SASL_USERS//,/ }; do
    for m in SCRAM-SHA-256 SCRAM-SHA-512; do
      scram+=(--add-scram "$m=[name=${u%%:*},password=${u#*:}]")
    done
  done
  local -a mode=(--standalone)
  if [[ -n $VOTERS ]]; then
    id=$CLUSTER_ID mode=()  # the static quorum of controller.quorum.voters
  fi
  "${KJAVA[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format "${mode[@]}" -t "$id" -c "$PROPS" "${scram[@]}" >>"$SETUP_LOG" 2>&1 ||
    die "formatting Kafka storage in $DATA failed" "$SETUP_LOG"
}

# Ready = a real Admin metadata round-trip works (the port alone opens before requests are served).
probe() {
  tcp_open 127.0.0.1 "$PORT" &&
    timeout 30 "${KJAVA[@]}" -cp "$TOOLS/*" org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "127.0.0.1:$PORT" --list >>"$SETUP_LOG" 2>&1
}

# first_error FROM: the first ERROR or FATAL of server.log past its line FROM, and the
# line after it (the exception), as ": text", or nothing.
first_error() {
  local e
  e=$(tail -n +"$(($1 + 1))" "$LOGS/server.log" 2>/dev/null | grep -m1 -A1 -E '^\[[^]]*\] (ERROR|FATAL) ' | tr -s '\n' ' ') || true
  [[ -z $e ]] || printf ': %s' "${e% }"
}

# wait_ready PID FROM: FROM is how many lines server.log had before this start.
wait_ready() {
  local pid=$1 from=${2:-0} deadline=$((SECONDS + 90))
  until probe; do
    running "$pid" || die "Kafka (pid $pid) exited during startup$(first_error "$from")" "$LOGS/kafka.out" "$LOGS/server.log"
    ((SECONDS < deadline)) || die "Kafka not ready on 127.0.0.1:$PORT after 90s" "$LOGS/server.log" "$SETUP_LOG"
    sleep 0.5
  done
}

first_broker_open() {
  local b=${BROKERS%%,*} host port
  b=${b// /}
  host=${b%:*} port=${b##*:}
  host=${host#[} host=${host%]}
  tcp_open "$host" "$port"
}

up() {
  if [[ -n $EXTERNAL ]]; then
    wait_for 90 first_broker_open || die "KAFKA_BROKERS=$BROKERS: no TCP connect to ${BROKERS%%,*} within 90s"
    return
  fi
  mkdir -p "$KDIR" "$SDIR" "$LOGS"
  broker_pid >/dev/null && tcp_open 127.0.0.1 "$PORT" && return 0  # warm: fast no-op
  lock "$SDIR/.lock"
  : >"$SETUP_LOG"
  local pid p
  if pid=$(broker_pid); then wait_ready "$pid"; return; fi  # still starting (e.g. concurrent up)
  rm -f "$PIDFILE"
  need_java
  fetch_jars
  render_config
  format_storage
  for p in "$PORT" "$CPORT" ${TLS_DIR:+"$SASL_SSL_PORT" "$SSL_PORT"}; do
    ! port_busy "$p" || die "port $p is in use by another process or connection (not our broker; see: ss -tanp 'sport = :$p'); stop it or set SITEWATCH_KAFKA_PORT / SITEWATCH_KAFKA_CONTROLLER_PORT"
  done
  echo "===== starting $(date -Is)" >>"$LOGS/kafka.out"
  local from
  from=$({ wc -l <"$LOGS/server.log"; } 2>/dev/null || echo 0)
  # setsid: own session, so the broker survives the calling shell/make and their Ctrl-C.
  # 9>&-: don't let the broker inherit our lock fd.
  # shellcheck disable=SC2016 # $$/$0/$@ belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" \
    java -Xms256m -Xmx512m -XX:+ExitOnOutOfMemoryError -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$SCRIPTS/kafka/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" </dev/null >>"$LOGS/kafka.out" 2>&1 9>&- &
  pid=$(wait_for 10 broker_pid) || die "Kafka JVM did not launch" "$LOGS/kafka.out"
  wait_ready "$pid" "$from"
}

# Graceful stop (controlled shutdown on SIGTERM), SIGKILL after 30s.
down() {
  [[ -z $EXTERNAL ]] || return 0  # not ours to stop
  [[ -d $SDIR ]] || return 0
  lock "$SDIR/.lock"
  local pid
  if pid=$(broker_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 30 gone "$pid"; then
      echo "WARNING: Kafka (pid $pid) ignored SIGTERM for 30s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 10 gone "$pid" || die "could not kill Kafka pid $pid"
    fi
  fi
  rm -f "$PIDFILE"
}

# cluster ACTION: three nodes, each this script with its own state, ports and
# node id, all voters of one quorum. They start together: a node is ready
# only once a majority of the quorum is up.
cluster() {
  local action=$1 cdir=$KDIR/cluster i rc=0 voters='' brokers=''
  local -a pids=()
  [[ -z $EXTERNAL ]] || die "KAFKA_BROKERS is set: kafka.sh cluster runs its own three nodes"
  for i in 1 2 3; do
    voters+="${voters:+,}$i@127.0.0.1:$((CLUSTER_PORT + 100 * (i - 1) + 1))"
    brokers+="${brokers:+,}127.0.0.1:$((CLUSTER_PORT + 100 * (i - 1)))"
  done
  if [[ $action == brokers ]]; then echo "$brokers"; return; fi
  if [[ $action == leader ]]; then
    # The active controller: the metadata quorum's leader.
    "${KJAVA[@]}" -cp "$TOOLS/*" org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$brokers" describe --status 2>&1 |
      awk -F': *' '$1 == "LeaderId" {print $2; found=1} END {exit !found}'
    return
  fi
  if [[ $action == up ]]; then
    mkdir -p "$cdir"
    need_java
    (lock "$KDIR/.lock" && fetch_jars)
    if [[ ! -s $cdir/cluster.id ]]; then
      "${KJAVA[@]}" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >"$cdir/cluster.id.tmp" 2>>"$cdir/setup.log" ||
        die "StorageTool random-uuid failed" "$cdir/setup.log"
      mv "$cdir/cluster.id.tmp" "$cdir/cluster.id"
    fi
  fi
  node() {
    SITEWATCH_KAFKA_STATE=$cdir/n$1 SITEWATCH_KAFKA_NODE_ID=$1 SITEWATCH_KAFKA_VOTERS=$voters \
      SITEWATCH_KAFKA_CLUSTER_ID=$(cat "$cdir/cluster.id" 2>/dev/null || echo none) \
      SITEWATCH_KAFKA_PORT=$((CLUSTER_PORT + 100 * ($1 - 1))) SITEWATCH_KAFKA_CONTROLLER_PORT=$((CLUSTER_PORT + 100 * ($1 - 1) + 1)) \
      "$0" "$2"
  }
  if [[ $action == pids ]]; then
    for i in 1 2 3; do echo "$i $(node "$i" pid || echo -)"; done
    return
  fi
  for i in 1 2 3; do
    node "$i" "$action" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=$?; done
  return $rc
}

case ${1:-} in
  up) up ;;
  pid) [[ -z $EXTERNAL ]] || die "KAFKA_BROKERS is set: not our broker"; broker_pid ;;
  cluster) [[ ${2:-} =~ ^(up|down|status|brokers|pids|leader)$ ]] || die "usage: $0 cluster up|down|status|brokers|pids|leader"; cluster "$2" ;;
  down) down ;;
  status) if [[ -n $EXTERNAL ]]; then first_broker_open; else broker_pid >/dev/null && tcp_open 127.0.0.1 "$PORT"; fi ;;
  brokers) echo "$BROKERS" ;;
  jars) mkdir -p "$SDIR"; fetch_jars ;; # the broker's and tools' jars only (the Kafka stand-in image of scripts/docker.sh)
  topics)
    shift
    need_java
    mkdir -p "$KDIR" && lock "$KDIR/.lock" && fetch_jars && exec 9>&-
    exec "${KJAVA[@]}" -cp "$TOOLS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" "$@" ;;
  *) echo "usage: $0 up|down|status|brokers|pid|jars|topics ARGS...|cluster ACTION" >&2; exit 2 ;;
esac
