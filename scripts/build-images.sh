#!/usr/bin/env bash
# Build the JupyCell images (called by `make images`):
#   jupycell-sandbox:latest  from sandbox_image/Dockerfile  (one per kernel)
#   jupycell-gateway:latest  from Dockerfile                (the API)
# with the repo root as build context. Docker's layer cache makes re-runs fast.
#
# Env:
#   JUPYCELL_BASE_IMAGE     base image to build on; default: python:3.11-slim if it
#                           can be pulled, else the local jupycell-base:bookworm
#                           made by scripts/build-base-image.sh (no registry).
#   JUPYCELL_EXTRA_CA       PEM file with extra CA certs for pip during the build
#                           (default: the file SSL_CERT_FILE or PIP_CERT names).
#   JUPYCELL_PULL_TIMEOUT   seconds to try pulling python:3.11-slim (default 60).
#   JUPYCELL_SANDBOX_IMAGE / JUPYCELL_GATEWAY_IMAGE   image tags to build.
#   JUPYCELL_REQUIREMENTS_APP  packages to preinstall in the sandbox image (default requirements_app.txt; a path
#                           inside the repo). With another file and tag it builds a custom kernel image for
#                           JUPYCELL_ALLOWED_IMAGES (docs/packages.md).
#   JUPYCELL_BUILD          which images: "all" (default), "sandbox" or "gateway".
set -euo pipefail

cd "$(dirname "$0")/.."

DEFAULT_BASE="python:3.11-slim"
LOCAL_BASE="${JUPYCELL_LOCAL_BASE:-jupycell-base:bookworm}"
SANDBOX_IMAGE="${JUPYCELL_SANDBOX_IMAGE:-jupycell-sandbox:latest}"
GATEWAY_IMAGE="${JUPYCELL_GATEWAY_IMAGE:-jupycell-gateway:latest}"
PULL_TIMEOUT="${JUPYCELL_PULL_TIMEOUT:-60}"

log() { echo "build-images: $*" >&2; }

# --- base image ---------------------------------------------------------------
if [ -n "${JUPYCELL_BASE_IMAGE:-}" ]; then
    BASE="$JUPYCELL_BASE_IMAGE"
elif timeout "$PULL_TIMEOUT" docker pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE="$DEFAULT_BASE"
elif docker image inspect "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE="$DEFAULT_BASE"        # offline, but pulled earlier
else
    log "cannot pull $DEFAULT_BASE; using local $LOCAL_BASE"
    JUPYCELL_LOCAL_BASE="$LOCAL_BASE" scripts/build-base-image.sh
    BASE="$LOCAL_BASE"
fi
log "base image: $BASE"

# --- optional extra CA (TLS-intercepting or corporate proxy) --------------------
mkdir -p build
CA_SRC=""
if [ -n "${JUPYCELL_EXTRA_CA:-}" ]; then
    [ -f "$JUPYCELL_EXTRA_CA" ] || { log "JUPYCELL_EXTRA_CA=$JUPYCELL_EXTRA_CA: no such file"; exit 1; }
    CA_SRC="$JUPYCELL_EXTRA_CA"
else
    for f in "${SSL_CERT_FILE:-}" "${PIP_CERT:-}"; do
        if [ -n "$f" ] && [ -f "$f" ]; then CA_SRC="$f"; break; fi
    done
fi
# Rewrite only when the content changes, so the layer cache survives re-runs.
tmp="$(mktemp build/extra-ca.pem.XXXXXX)"
if [ -n "$CA_SRC" ]; then
    log "extra CA for pip: $CA_SRC"
    cat "$CA_SRC" >"$tmp"
else
    : >"$tmp"
fi
if cmp -s "$tmp" build/extra-ca.pem; then rm -f "$tmp"; else mv -f "$tmp" build/extra-ca.pem; fi
chmod 0644 build/extra-ca.pem

# --- images -------------------------------------------------------------------
# The classic builder is what a 20.10 engine has without BuildKit; the
# Dockerfiles use nothing that needs BuildKit.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

build() {  # build TAG DOCKERFILE [BUILD ARGS...]
    log "building $1 from $2"
    local t0=$SECONDS tag=$1 file=$2
    shift 2
    docker build --force-rm --build-arg "BASE_IMAGE=$BASE" "$@" -f "$file" -t "$tag" . >build/"${tag%%:*}".log 2>&1 || {
        tail -n 40 build/"${tag%%:*}".log >&2
        log "FAILED: $tag (full log: build/${tag%%:*}.log)"
        return 1
    }
    log "built $tag in $((SECONDS - t0))s"
}

WHAT="${JUPYCELL_BUILD:-all}"
REQUIREMENTS_APP="${JUPYCELL_REQUIREMENTS_APP:-requirements_app.txt}"
[ -f "$REQUIREMENTS_APP" ] || { log "JUPYCELL_REQUIREMENTS_APP=$REQUIREMENTS_APP: no such file in the repo"; exit 1; }
if [ "$WHAT" != gateway ]; then
    build "$SANDBOX_IMAGE" sandbox_image/Dockerfile --build-arg "REQUIREMENTS_APP=$REQUIREMENTS_APP"
fi
if [ "$WHAT" != sandbox ]; then
    build "$GATEWAY_IMAGE" Dockerfile
fi
docker images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^jupycell-' >&2 || true
