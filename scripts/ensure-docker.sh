#!/usr/bin/env bash
# Make sure a Docker engine (with the gVisor `runsc` runtime registered) and
# `docker compose` work on this machine. Idempotent; needs root for installs.
#
# On a fresh Debian 12 machine this installs Debian's docker.io (dockerd 20.10),
# docker-compose (v1), debootstrap and runsc, registers runsc in
# /etc/docker/daemon.json, starts dockerd in the background and, when the docker
# CLI has no compose plugin, installs a small `docker compose` -> `docker-compose`
# shim.
set -euo pipefail

DAEMON_JSON=/etc/docker/daemon.json
DOCKERD_LOG=/var/log/jupycell-dockerd.log
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
WAIT_SECONDS=60

log() { echo "ensure-docker: $*" >&2; }

engine_ok() { docker info >/dev/null 2>&1; }
compose_ok() { docker compose version >/dev/null 2>&1; }
runsc_registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

# Fast path: everything already works.
if engine_ok && compose_ok && { ! command -v runsc >/dev/null || runsc_registered; }; then
    exit 0
fi

# --- 1. packages ----------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v runsc >/dev/null || missing+=(runsc)
if [ "${#missing[@]}" -gt 0 ]; then
    # shellcheck disable=SC2207
    pkgs=($(printf '%s\n' "${missing[@]}" | sort -u))
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${pkgs[@]}"
fi

# --- 2. daemon.json: register runsc (keep any other settings) -----------------
# Prints "changed" when the file was (re)written.
register_runsc() {
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" <<'PY'
import json, os, sys
path = sys.argv[1]
want = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--host-uds=all"]}
cfg = {}
if os.path.exists(path) and os.path.getsize(path) > 0:
    with open(path) as f:
        cfg = json.load(f)
if cfg.get("runtimes", {}).get("runsc") == want:
    sys.exit(0)
cfg.setdefault("runtimes", {})["runsc"] = want
with open(path + ".tmp", "w") as f:
    json.dump(cfg, f, indent=2)
    f.write("\n")
os.replace(path + ".tmp", path)
print("changed")
PY
}

dockerd_pid() {
    local pid
    if [ -s /var/run/docker.pid ]; then
        pid="$(cat /var/run/docker.pid)"
        if kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
    fi
    pgrep -xo dockerd 2>/dev/null || true
}

changed=""
if command -v runsc >/dev/null; then
    changed="$(register_runsc)"
fi

# --- 3. the engine -------------------------------------------------------
pid="$(dockerd_pid)"
if [ -n "$pid" ]; then
    # Running already: reload the config if runsc was just registered.
    if [ -n "$changed" ] || { command -v runsc >/dev/null && engine_ok && ! runsc_registered; }; then
        log "reloading dockerd ($pid) to register runsc"
        kill -HUP "$pid"
        sleep 1
    fi
else
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup: the engine outlives this script, make and the CI step.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for _ in $(seq "$WAIT_SECONDS"); do
    engine_ok && break
    sleep 1
done
if ! engine_ok; then
    log "docker engine not ready after ${WAIT_SECONDS}s; last log lines:"
    tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
    exit 1
fi
if command -v runsc >/dev/null && ! runsc_registered; then
    log "warning: runsc is installed but not registered with the engine"
fi

# --- 4. `docker compose` -----------------------------------------------------
if ! compose_ok; then
    log "installing docker compose shim -> docker-compose at $PLUGIN_DIR"
    mkdir -p "$PLUGIN_DIR"
    cat >"$PLUGIN_DIR/docker-compose.tmp" <<'SHIM'
#!/bin/sh
# JupyCell shim: lets `docker compose ...` run Debian's docker-compose v1.
# Docker CLI plugins must answer `docker-cli-plugin-metadata` with JSON; the CLI
# then calls the plugin as `<plugin> compose ARGS...`.
if [ "${1:-}" = "docker-cli-plugin-metadata" ]; then
    echo '{"SchemaVersion":"0.1.0","Vendor":"JupyCell","Version":"1.29-shim","ShortDescription":"Docker Compose (v1 shim)"}'
    exit 0
fi
if [ "${1:-}" = "compose" ]; then
    shift
fi
exec docker-compose "$@"
SHIM
    chmod 0755 "$PLUGIN_DIR/docker-compose.tmp"
    mv -f "$PLUGIN_DIR/docker-compose.tmp" "$PLUGIN_DIR/docker-compose"
fi
if ! compose_ok; then
    log "docker compose still does not work"
    exit 1
fi
log "ok: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version 2>/dev/null | head -n1)"
