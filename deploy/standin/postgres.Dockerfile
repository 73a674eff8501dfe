# Stand-in for the official postgres image where it cannot be pulled
# (scripts/docker.sh): Debian bookworm's PostgreSQL 15 (PGDG's newer
# servers are not in Debian's archive) behind an entrypoint that honours
# the part of the official image's interface deploy/docker-compose.yml uses:
# POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD(_FILE), the scripts of
# /docker-entrypoint-initdb.d run once on an empty data directory,
# PGDATA=/var/lib/postgresql/data, pg_isready and psql on the PATH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /docker-entrypoint-initdb.d /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
