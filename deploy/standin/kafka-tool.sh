#!/bin/sh
# /opt/kafka/bin/*.sh of the Kafka stand-in image: one script, named by the
# link it is called through, starting the class the distribution's script
# of that name starts. The broker uses /opt/kafka/libs, the tools
# /opt/kafka/tools-libs (scripts/kafka/pom.xml's two profiles).
set -eu
log="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"
tool() { exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC $log -cp '/opt/kafka/tools-libs/*' "$@"; }
case $(basename "$0") in
  kafka-server-start.sh)
    exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+ExitOnOutOfMemoryError -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -Djava.awt.headless=true $log ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*' kafka.Kafka "$@" ;;
  kafka-storage.sh)
    exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC $log -cp '/opt/kafka/libs/*' kafka.tools.StorageTool "$@" ;;
  kafka-topics.sh) tool org.apache.kafka.tools.TopicCommand "$@" ;;
  kafka-broker-api-versions.sh) tool org.apache.kafka.tools.BrokerApiVersionsCommand "$@" ;;
  kafka-console-producer.sh) tool org.apache.kafka.tools.ConsoleProducer "$@" ;;
  kafka-console-consumer.sh) tool org.apache.kafka.tools.consumer.ConsoleConsumer "$@" ;;
  kafka-consumer-groups.sh) tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
  kafka-configs.sh) tool org.apache.kafka.tools.ConfigCommand "$@" ;;
  kafka-metadata-quorum.sh) tool org.apache.kafka.tools.MetadataQuorumCommand "$@" ;;
  *) echo "kafka-tool.sh: called as $(basename "$0"), which this stand-in does not provide" >&2; exit 2 ;;
esac
