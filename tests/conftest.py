"""Fixtures, scoped by cost: one gateway process per test worker, one kernel per test; markers by directory.

Everything the tests start carries a per-worker ``jupycell.instance`` label and is removed by label at the end,
so workers running in parallel never see each other's kernels.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testing.harness import Api, GatewayProcess, remove_instance_containers

# Limits small enough to hit quickly in tests, large enough for numpy/pandas/matplotlib.
TEST_SETTINGS = {"mem_limit_mb": 512, "run_timeout": 60, "interrupt_grace": 2, "jupyter_allowed_env": "JC_GREETING"}

#: Tests under these directories need the Docker engine (and the images): ``pytest -m "not docker"`` skips them.
DOCKER_DIRS = ("integration", "security", "e2e")
#: Deadline of a test without Docker (seconds); the others have pyproject.toml's default, or their own mark.
FAST_TIER_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        relative = item.path.relative_to(tests) if item.path.is_relative_to(tests) else None
        if relative is not None and relative.parts[0] in DOCKER_DIRS:
            item.add_marker(pytest.mark.docker)
        elif item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIER_TIMEOUT))


@pytest.fixture(scope="session")
def kernels_root() -> Iterator[Path]:
    # Short path: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="jc-") as root:
        yield Path(root)


class GatewayFactory:
    """Starts gateways for one test and stops them all at its end (their instances' containers removed)."""

    def __init__(self, kernels_root: Path) -> None:
        self.kernels_root = kernels_root
        self.started: list[GatewayProcess] = []

    def __call__(self, name: str = "g", **settings: Any) -> GatewayProcess:
        """A started gateway whose kernels dir is ``<kernels root>/<name>``; settings as for ``GatewayProcess``."""
        return self.start(GatewayProcess(self.kernels_root / name, **settings))

    def again(self, gateway: GatewayProcess, **changes: Any) -> GatewayProcess:
        """The same gateway (instance, dirs, database, keys) started again; ``gateway`` should be stopped."""
        return self.start(gateway.again(**changes))

    def start(self, gateway: GatewayProcess) -> GatewayProcess:
        self.started.append(gateway)
        return gateway.start()

    def close(self) -> None:
        try:
            for gateway in self.started:
                gateway.stop()
        finally:
            for instance in dict.fromkeys(g.instance for g in self.started):
                remove_instance_containers(instance)


@pytest.fixture
def gateway_factory(kernels_root: Path) -> Iterator[GatewayFactory]:
    factory = GatewayFactory(kernels_root)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(kernels_root / "k", **TEST_SETTINGS) as process:
        yield process


@pytest.fixture(scope="session")
def api(gateway: GatewayProcess) -> Iterator[Api]:
    with Api(gateway.url) as client:
        yield client


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
