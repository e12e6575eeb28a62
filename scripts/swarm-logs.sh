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
    if ! docker exec "$PREFIX-$node" true 2>/dev/null; then  # stopped by a test: read its engine's files
        root=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/var/lib/docker"}}{{.Source}}{{end}}{{end}}' \
            "$PREFIX-$node" 2>/dev/null) || { echo "swarm-logs: no $node" >&2; continue; }
        "${PYTHON:-python3}" - "$root" "$OUT/$node" <<'PY'
import json, pathlib, sys
root, out = pathlib.Path(sys.argv[1]), sys.argv[2]
for config in (root / "containers").glob("*/config.v2.json"):
    service = json.loads(config.read_text())["Config"]["Labels"].get("com.docker.swarm.service.name")
    if service:
        log = config.parent / f"{config.parent.name}-json.log"
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        text = "".join(f"{entry['time']} {entry['log']}" for entry in lines)
        pathlib.Path(f"{out}-{service}-{config.parent.name[:12]}.log").write_text(text)
PY
        echo "swarm-logs: $node is stopped; its services' logs read from its engine's files" >&2
        continue
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
