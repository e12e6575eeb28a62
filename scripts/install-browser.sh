#!/usr/bin/env bash
# The browser tests' needs (tests/live): Debian's Chromium, driven by Playwright for Python with
# executable_path=/usr/bin/chromium. Playwright's own browser download (`playwright install`) is not used: it
# cannot work on a machine without outside network. Idempotent; needs root for apt-get.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import playwright' 2>/dev/null || "$PYTHON" -m pip install 'playwright>=1.45'
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" != 0 ]; then  # a developer without root: the browser tests skip (CI, as root, installs it)
        echo "install-browser: not root, Chromium not installed: run 'sudo apt-get install chromium' for tests/live" >&2
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium || { apt-get update && apt-get install -y --no-install-recommends chromium; }
fi
chromium --version
