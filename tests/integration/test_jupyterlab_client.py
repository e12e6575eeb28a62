"""JupyterLab's own kernel client library (@jupyterlab/services, from npm) against JupyCell: start, execute,
interrupt, a requested restart that does not look like a crash (no "kernel appears to have died"), complete, shut
down. Runs scripts/jupyterlab-client-check.sh; needs node and npm (CI has them: they are required there)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from testing.harness import GatewayProcess

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "jupyterlab-client-check.sh"


def test_jupyterlab_client_library(gateway: GatewayProcess) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the JupyterLab client check")
        pytest.skip("node and npm are not installed")
    done = subprocess.run(["bash", str(SCRIPT), gateway.url], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "execute, interrupt, restart, complete: ok" in done.stdout
    assert "statuses around the requested restart:" in done.stdout and "autorestarting" not in done.stdout
