"""Fixtures, scoped by cost: one gateway process per test worker, one kernel per test.

Everything the tests start carries a per-worker ``jupycell.instance`` label and is removed by label at the end,
so workers running in parallel never see each other's kernels.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Api, GatewayProcess, remove_instance_containers

# Limits small enough to hit quickly in tests, large enough for numpy/pandas/matplotlib.
TEST_SETTINGS = {"mem_limit_mb": 512, "run_timeout": 60, "interrupt_grace": 2, "jupyter_allowed_env": "JC_GREETING"}


@pytest.fixture(scope="session")
def kernels_root() -> Iterator[Path]:
    # Short path: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="jc-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(kernels_root / "k", **TEST_SETTINGS).start()
    try:
        yield process
    finally:
        process.stop()
        remove_instance_containers(process.instance)


@pytest.fixture(scope="session")
def api(gateway: GatewayProcess) -> Iterator[Api]:
    client = Api(gateway.url)
    yield client
    client.close()


@pytest.fixture
def kernel(api: Api) -> Iterator[int]:
    kernel_id = api.start()
    yield kernel_id
    api.shutdown(kernel_id)


#: API keys of ``keyed_gateway`` (issue 12: MCP and SDK tests of keys and ownership).
KEYS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789", "root": "root-secret-0123456789"}


@pytest.fixture(scope="session")
def keyed_gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    """A gateway with API keys (alice, bob, root as admin) and MCP progress every 0.3 s."""
    keys = ",".join(f"{name}:{secret}" + (":admin" if name == "root" else "") for name, secret in KEYS.items())
    process = GatewayProcess(kernels_root / "keyed", **TEST_SETTINGS, api_keys=keys, mcp_progress_interval=0.3)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        remove_instance_containers(process.instance)
