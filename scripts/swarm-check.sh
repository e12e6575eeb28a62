#!/usr/bin/env bash
# After scripts/swarm-up.sh: a probe container on the stack's control network (in node1) uses every agent that
# Swarm DNS lists: a kernel started on each node, 1+1 over its Curve relay; a key not allowed gets nothing.
# `scripts/swarm-check.sh --agent-restart`: kernels keep their memory while the agent service is force-updated.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${JUPYCELL_SWARM_STATE:-$PWD/.swarm}
key() { python3 -c "import sys, zmq.auth; print(zmq.auth.load_certificate(sys.argv[1])[int(sys.argv[2])].decode())" "$@"; }
socket=()
[ "${1:-}" = --agent-restart ] && socket=(-v /var/run/docker.sock:/var/run/docker.sock)
docker exec -i jupycell-swarm-node1 docker run --rm -i --network jupycell_control "${socket[@]}" \
    -e JC_AGENT_PUBLIC="$(key "$STATE/keys/agent.key" 0)" \
    -e JC_GATEWAY_PUBLIC="$(key "$STATE/keys/gateway.key_secret" 0)" \
    -e JC_GATEWAY_SECRET="$(key "$STATE/keys/gateway.key_secret" 1)" \
    "${JUPYCELL_GATEWAY_IMAGE:-jupycell-gateway:latest}" python - "$@" <scripts/swarm_probe.py
