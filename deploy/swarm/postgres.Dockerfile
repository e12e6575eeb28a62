# PostgreSQL from Debian's packages on the local Debian base, for the Swarm stack where no registry is
# reachable (with a registry, use the official postgres image instead). Data in /var/lib/postgresql/data; the
# password comes from the file POSTGRES_PASSWORD_FILE names (a Swarm secret).
ARG BASE_IMAGE=jupycell-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/*
RUN install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
