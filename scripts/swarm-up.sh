#!/usr/bin/env bash
# Build a two-node Docker Swarm out of docker-in-docker containers on this machine and deploy JupyCell's
# stack (deploy/swarm/stack.yml) on it. Everything it makes carries the label jupycell.swarm=true and is
# removed by scripts/swarm-down.sh. Re-running it redeploys the stack on the existing nodes.
#
# Env: JUPYCELL_SWARM_PORT    host port (127.0.0.1) of node1's gateway replica (default 8800; node2's: +1)
#      JUPYCELL_SWARM_STATE   directory for the generated keys and the API key (default .swarm in the repo)
#      JUPYCELL_GATEWAY_IMAGE / JUPYCELL_SANDBOX_IMAGE  images to run (default jupycell-*:latest, `make images`)
#      JUPYCELL_ALLOWED_IMAGES  custom sandbox images (comma-separated, built on this host): loaded into every node
#                               and allowed in the stack (default: none)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=jupycell-swarm
NETWORK=$PREFIX-net
NODES=(node1 node2)
PORT=${JUPYCELL_SWARM_PORT:-8800}
STATE=${JUPYCELL_SWARM_STATE:-$PWD/.swarm}
GATEWAY_IMAGE=${JUPYCELL_GATEWAY_IMAGE:-jupycell-gateway:latest}
SANDBOX_IMAGE=${JUPYCELL_SANDBOX_IMAGE:-jupycell-sandbox:latest}
ALLOWED_IMAGES=${JUPYCELL_ALLOWED_IMAGES:-}
IFS=', ' read -r -a CUSTOM_IMAGES <<<"$ALLOWED_IMAGES"
IMAGES=("$GATEWAY_IMAGE" "$SANDBOX_IMAGE" "${CUSTOM_IMAGES[@]}")
LABEL=jupycell.swarm=true
say() { echo "swarm-up: $*" >&2; }
in_node() { local node=$1; shift; docker exec -i "$PREFIX-$node" "$@"; }

until_true() {  # until_true SECONDS WHAT COMMAND...: poll until the command succeeds, or fail saying WHAT
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then say "timed out waiting for: $what"; exit 1; fi
        sleep 1
    done
}

for image in "${IMAGES[@]}"; do
    docker image inspect "$image" >/dev/null 2>&1 || { say "missing image $image: run make images"; exit 1; }
done
docker image inspect jupycell-base:bookworm >/dev/null 2>&1 || scripts/build-base-image.sh
say "building the node and PostgreSQL images"
build() {  # build IMAGE DOCKERFILE: quiet unless it fails
    local output
    output=$(docker build -q -t "$1" -f "$2" deploy/swarm 2>&1) || { echo "$output" >&2; exit 1; }
}
build jupycell-swarm-node:latest deploy/swarm/node.Dockerfile
build jupycell-postgres:latest deploy/swarm/postgres.Dockerfile

docker network inspect "$NETWORK" >/dev/null 2>&1 || docker network create --label "$LABEL" "$NETWORK" >/dev/null
for node in "${NODES[@]}"; do
    name=$PREFIX-$node
    if docker container inspect "$name" >/dev/null 2>&1; then
        docker start "$name" >/dev/null
        continue
    fi
    # node1's gateway replica on 127.0.0.1:PORT, node2's on PORT+1
    publish=(-p "127.0.0.1:$((PORT + ${node#node} - 1)):8000")
    say "starting $name"
    # --privileged fails on this kind of machine: every capability but SYS_RESOURCE, no seccomp/AppArmor
    # confinement, writable cgroups; the inner engine nests its containers under its own cgroup parent.
    docker volume create --label "$LABEL" "$name-docker" >/dev/null
    docker run -d --name "$name" --hostname "$node" --label "$LABEL" --network "$NETWORK" "${publish[@]}" \
        --cap-add=ALL --cap-drop=SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
        -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v "$name-docker:/var/lib/docker" \
        jupycell-swarm-node:latest --cgroup-parent="/$name" >/dev/null
done
for node in "${NODES[@]}"; do
    until_true 120 "the engine in $node" in_node "$node" docker info
    in_node "$node" mkdir -p /var/lib/jupycell/kernels /var/lib/jupycell/agent
done

reloaded=0
for node in "${NODES[@]}"; do
    wanted=("${IMAGES[@]}")
    [ "$node" = node1 ] && wanted+=(jupycell-postgres:latest)
    missing=()
    for image in "${wanted[@]}"; do
        [ "$(in_node "$node" docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" = \
          "$(docker image inspect -f '{{.Id}}' "$image")" ] || missing+=("$image")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "loading ${missing[*]} into $node"
        docker save "${missing[@]}" | in_node "$node" docker load -q >/dev/null
        reloaded=1
    fi
done

if [ "$(in_node node1 docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
    address=$(docker container inspect -f "{{(index .NetworkSettings.Networks \"$NETWORK\").IPAddress}}" "$PREFIX-node1")
    say "swarm init on node1 ($address)"
    in_node node1 docker swarm init --advertise-addr "$address" >/dev/null
fi
token=$(in_node node1 docker swarm join-token -q worker)
manager=$(in_node node1 docker info -f '{{(index .Swarm.RemoteManagers 0).Addr}}')
for node in "${NODES[@]:1}"; do
    if [ "$(in_node "$node" docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
        say "$node joins"
        in_node "$node" docker swarm join --token "$token" "$manager" >/dev/null
    fi
done
for node in "${NODES[@]}"; do
    in_node node1 docker node update --label-add jupycell.kernels=true --label-add jupycell.gateway=true "$node" >/dev/null
done
in_node node1 docker node update --label-add jupycell.db=true node1 >/dev/null

# Secrets: Curve keypairs for agents and gateways, an admin API key, the database password and URL.
mkdir -p "$STATE" && chmod 700 "$STATE"
if [ ! -f "$STATE/keys/agent.key_secret" ]; then
    docker run --rm -v "$STATE:/state" --network none "${IMAGES[0]}" python -m gateway.agent.keys /state/keys >/dev/null
fi
[ -f "$STATE/api-key" ] || echo "swarm:$(openssl rand -hex 24):admin" > "$STATE/api-key"
[ -f "$STATE/db-password" ] || openssl rand -hex 24 > "$STATE/db-password"
declare -A secrets=(
    [jupycell_agent_curve]="$STATE/keys/agent.key_secret"
    [jupycell_agent_curve_pub]="$STATE/keys/agent.key"
    [jupycell_gateway_curve]="$STATE/keys/gateway.key_secret"
    [jupycell_gateway_curve_pub]="$STATE/keys/gateway.key"
    [jupycell_api_keys]="$STATE/api-key"
    [jupycell_db_password]="$STATE/db-password"
)
for secret in "${!secrets[@]}"; do
    in_node node1 docker secret inspect "$secret" >/dev/null 2>&1 ||
        in_node node1 docker secret create "$secret" - <"${secrets[$secret]}" >/dev/null
done
in_node node1 docker secret inspect jupycell_database_url >/dev/null 2>&1 ||
    printf 'postgresql+psycopg://postgres:%s@postgres/jupycell' "$(cat "$STATE/db-password")" |
        in_node node1 docker secret create jupycell_database_url - >/dev/null

say "deploying the stack"
deployed=$(in_node node1 sh -c "docker stack ls --format '{{.Name}}' 2>/dev/null | grep -cx jupycell || true")
in_node node1 sh -c 'cat > /root/stack.yml' <deploy/swarm/stack.yml
docker exec -e JUPYCELL_GATEWAY_IMAGE="$GATEWAY_IMAGE" -e JUPYCELL_SANDBOX_IMAGE="$SANDBOX_IMAGE" \
    -e JUPYCELL_ALLOWED_IMAGES="$ALLOWED_IMAGES" -e JUPYCELL_PORT=8000 "$PREFIX-node1" docker stack deploy --resolve-image never -c /root/stack.yml jupycell >/dev/null
if [ "$deployed" = 1 ] && [ "$reloaded" = 1 ]; then
    # Same tags, new images: the services' specs did not change, so replace their tasks explicitly.
    say "new images under the same tags: replacing the running tasks"
    for service in agent gateway; do
        in_node node1 docker service update --force jupycell_$service >/dev/null 2>&1
    done
fi

agents_on_every_node() {
    local running
    running=$(in_node node1 docker service ps jupycell_agent --filter desired-state=running \
        --format '{{.Node}} {{.CurrentState}}' | grep -c ' Running' || true)
    [ "$running" -eq "${#NODES[@]}" ]
}
until_true 180 "an agent running on each node" agents_on_every_node
for port in "$PORT" "$((PORT + 1))"; do
    until_true 300 "a gateway's /health on 127.0.0.1:$port" \
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)"
done
in_node node1 docker service ls --format '{{.Name}} {{.Mode}} {{.Replicas}}' >&2
say "ready: http://127.0.0.1:$PORT and http://127.0.0.1:$((PORT + 1)) (API key in $STATE/api-key)"
