# Stand-in for apache/kafka where it cannot be pulled (scripts/docker.sh):
# the same Kafka release's jars (scripts/kafka/pom.xml, from Maven Central)
# on Debian bookworm's OpenJDK 17, laid out as the official image is for
# what deploy/docker-compose.yml uses: /opt/kafka/bin's kafka-server-start.sh,
# kafka-storage.sh, kafka-topics.sh, kafka-broker-api-versions.sh (and a few
# more), the default command /etc/kafka/docker/run that turns KAFKA_*
# variables into the broker's properties, CLUSTER_ID, the user appuser and
# the data directory /var/lib/kafka/data.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --home-dir /home/appuser --create-home appuser \
 && mkdir -p /opt/kafka/bin /opt/kafka/config /etc/kafka/docker /etc/kafka/secrets /var/lib/kafka/data /mnt/shared/config \
 && chown appuser:appuser /var/lib/kafka/data /opt/kafka/config /mnt/shared/config
COPY libs/ /opt/kafka/libs/
COPY tools/ /opt/kafka/tools-libs/
COPY kafka-log4j2.properties /opt/kafka/config/log4j2.properties
COPY kafka-tool.sh /opt/kafka/bin/kafka-tool.sh
COPY kafka-run.sh /etc/kafka/docker/run
RUN cd /opt/kafka/bin \
 && for t in kafka-server-start kafka-storage kafka-topics kafka-broker-api-versions kafka-console-producer \
             kafka-console-consumer kafka-consumer-groups kafka-configs kafka-metadata-quorum; do \
      ln -s kafka-tool.sh "$t.sh"; \
    done
ENV PATH=/opt/kafka/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER appuser
VOLUME ["/etc/kafka/secrets", "/var/lib/kafka/data", "/mnt/shared/config"]
EXPOSE 9092
CMD ["/etc/kafka/docker/run"]
