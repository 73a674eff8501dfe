#!/bin/bash
# The Kafka stand-in's default command, as the official image's
# /etc/kafka/docker/run: every KAFKA_* variable becomes a broker property
# (KAFKA_ removed, lower case, ___ -> -, __ -> _, _ -> .), except the JVM
# and logging ones; the storage is formatted once with CLUSTER_ID; then the
# broker runs in the foreground.
set -euo pipefail
props=/opt/kafka/config/server.properties
: "${CLUSTER_ID:?the Kafka stand-in needs CLUSTER_ID (kafka-storage.sh random-uuid makes one)}"
: >"$props"
while IFS='=' read -r name value; do
  case $name in
    KAFKA_VERSION | KAFKA_HEAP_OPTS | KAFKA_LOG4J_OPTS | KAFKA_OPTS | KAFKA_JMX_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | \
      KAFKA_GC_LOG_OPTS | KAFKA_LOG4J_ROOT_LOGLEVEL | KAFKA_LOG4J_LOGGERS | KAFKA_TOOLS_LOG4J_LOGLEVEL) continue ;;
  esac
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >>"$props"
done < <(env | grep '^KAFKA_' | sort)
[[ -s $props ]] || { echo "the Kafka stand-in needs its settings as KAFKA_* variables (none set)" >&2; exit 1; }
kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$props"
exec kafka-server-start.sh "$props"
