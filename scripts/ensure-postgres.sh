#!/usr/bin/env bash
# Make sure a throwaway PostgreSQL server for the persistence tests runs on this
# machine, and print its admin URL (the tests create one database per gateway
# in it and drop it afterwards). Idempotent; installs Debian's postgresql when
# missing (needs root then).
#
#   export JUPYCELL_TEST_POSTGRES_URL="$(scripts/ensure-postgres.sh)"
#
# The server is private to this machine's tests: its own data directory, a unix
# socket only (no TCP), trust authentication for local connections.
set -euo pipefail

PGROOT="${JUPYCELL_TEST_PG_DIR:-/tmp/jupycell-pg}"
PGPORT="${JUPYCELL_TEST_PG_PORT:-5439}"
DATA="$PGROOT/data"

log() { echo "ensure-postgres: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(bindir)" ]; then
    log "installing Debian's postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
fi
BIN="$(bindir)"

as_owner() {  # run as the postgres user when we are root (the server refuses to run as root)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url="postgresql://postgres@/postgres?host=$PGROOT&port=$PGPORT"

if "$BIN/pg_isready" -q -h "$PGROOT" -p "$PGPORT"; then
    echo "$url"
    exit 0
fi

mkdir -p "$PGROOT"
if [ "$(id -u)" = 0 ]; then chown postgres: "$PGROOT"; fi
if [ ! -s "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 >&2
fi
log "starting the server (socket $PGROOT, port $PGPORT)"
as_owner "$BIN/pg_ctl" -D "$DATA" -l "$PGROOT/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$PGROOT' -p $PGPORT -c max_connections=200" start >&2
echo "$url"
