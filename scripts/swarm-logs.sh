#!/usr/bin/env bash
# Keep what the swarm's services said, before swarm-down removes it: every gateway, agent and PostgreSQL task
# container on every node (running or exited), its logs and state, into $JUPYCELL_SWARM_LOGS (default .swarm-logs/).
# Run by `make test-swarm` when a test fails; prints each gateway's last lines so a CI log shows them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${JUPYCELL_SWARM_LOGS:-$PWD/.swarm-logs}
PREFIX=jupycell-swarm
mkdir -p "$OUT"
for node in node1 node2; do
    if ! docker exec "$PREFIX-$node" true 2>/dev/null; then  # stopped by a test: start it to read its engine
        docker start "$PREFIX-$node" >/dev/null 2>&1 || { echo "swarm-logs: $node does not start" >&2; continue; }
        for _ in $(seq 60); do docker exec "$PREFIX-$node" docker info >/dev/null 2>&1 && break; sleep 1; done
    fi
    docker exec "$PREFIX-$node" docker ps -a --no-trunc >"$OUT/$node-ps.txt" 2>&1
    for container in $(docker exec "$PREFIX-$node" docker ps -aq --filter label=com.docker.stack.namespace=jupycell); do
        name=$(docker exec "$PREFIX-$node" docker inspect -f '{{index .Config.Labels "com.docker.swarm.service.name"}}' "$container")
        docker exec "$PREFIX-$node" docker inspect -f '{{json .State}}' "$container" >"$OUT/$node-$name-$container.state" 2>&1
        docker exec "$PREFIX-$node" docker logs -t "$container" >"$OUT/$node-$name-$container.log" 2>&1
        if [ "$name" = jupycell_gateway ]; then
            echo "swarm-logs: last lines of $name on $node ($container):" >&2
            tail -n 40 "$OUT/$node-$name-$container.log" >&2
        fi
    done
done
echo "swarm-logs: kept in $OUT" >&2
