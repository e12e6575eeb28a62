#!/usr/bin/env bash
# Check a Jupyter-protocol server with JupyterLab's own kernel client library (@jupyterlab/services from npm).
#   scripts/jupyterlab-client-check.sh http://127.0.0.1:8000 [API_KEY]                  JupyCell directly (v1 protocol)
#   scripts/jupyterlab-client-check.sh http://127.0.0.1:8888 [JUPYTER_SERVER_TOKEN]     a `jupyter server --gateway-url`
# Needs node (>= 18) and npm; installs into a temporary directory, touches nothing else.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/jupyterlab-client-check.mjs" "$work/check.mjs"
(cd "$work" && npm install --silent --no-audit --no-fund @jupyterlab/services@7 ws@8 >/dev/null)
node "$work/check.mjs" "$@"
