#!/usr/bin/env bash
# Remove everything scripts/swarm-up.sh made: the node containers (their engines, the stack and every kernel in
# them go with them), their volumes and network (all labelled jupycell.swarm=true), and the generated secrets.
# Keeps the images (jupycell-swarm-node, jupycell-postgres); `docker rmi` them to reclaim the space.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${JUPYCELL_SWARM_STATE:-$PWD/.swarm}
LABEL=jupycell.swarm=true
docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f -v >/dev/null
docker volume ls -q --filter "label=$LABEL" | xargs -r docker volume rm >/dev/null
docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null
rm -rf "$STATE"
echo "swarm-down: removed the swarm nodes, their volumes and network, and $STATE" >&2
