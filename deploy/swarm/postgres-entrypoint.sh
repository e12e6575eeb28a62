#!/bin/sh
# First start: create the cluster with the password from $POSTGRES_PASSWORD_FILE and the database
# $POSTGRES_DB (default jupycell); then run the server, listening on the stack's control network only.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n1)
: "${POSTGRES_DB:=jupycell}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    "$BIN/initdb" -D "$PGDATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
        --pwfile="$POSTGRES_PASSWORD_FILE" >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
    "$BIN/psql" -v ON_ERROR_STOP=1 -h /tmp -U postgres -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
