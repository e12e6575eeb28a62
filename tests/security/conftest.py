"""The adversarial suite's fixtures: its own gateway with small limits, a victim kernel per attack, and a
bystander kernel started before the attacks whose state every attack must leave intact.

After every test, ``gateway_still_serves`` checks that the gateway answers and that the bystander still runs code
with its state intact. The gateway runs with API keys, so the kernels can be searched for them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from testing.harness import Api, GatewayProcess, client_for, stdout_of

KEY = "attacker-secret-key-0123456789abcdef"
ADMIN_KEY = "operator-secret-key-0123456789abcdef"

LIMITS = {
    "mem_limit_mb": 384,
    "tmp_size_mb": 64,
    "work_size_mb": 64,
    "shm_size_mb": 16,
    "pids_limit": 128,
    "nofile_limit": 256,
    "log_max_size_kb": 64,
    "run_timeout": 30,
    "interrupt_grace": 2,
    "max_output_bytes": 100_000,
    "max_outputs": 200,
    "max_image_bytes": 200_000,
    "max_message_mb": 64,
}

RUNTIME = os.environ.get("JUPYCELL_RUNTIME", "runc")
GVISOR = RUNTIME == "runsc"


@pytest.fixture(scope="session")
def hostile_gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    keys = {"attacker": KEY, "operator": ADMIN_KEY}
    with GatewayProcess(kernels_root / "h", keys=keys, admins={"operator"}, audit_log="off", **LIMITS) as process:
        yield process


@pytest.fixture(scope="session")
def api(hostile_gateway: GatewayProcess) -> Iterator[Api]:
    with client_for(hostile_gateway, "attacker") as client:
        yield client


@pytest.fixture(scope="session")
def bystander(hostile_gateway: GatewayProcess) -> Iterator[int]:
    """Another caller's kernel, started before any attack, holding state every attack must leave intact."""
    with client_for(hostile_gateway, "operator") as owner:
        kernel = owner.start()
        assert stdout_of(owner.execute(kernel, "bystander_state = {'n': 12345}\nprint('ready')")) == "ready\n"
        yield kernel
        owner.shutdown(kernel)


@pytest.fixture
def bystander_api(hostile_gateway: GatewayProcess) -> Iterator[Api]:
    with client_for(hostile_gateway, "operator") as client:
        yield client


@pytest.fixture(autouse=True)
def gateway_still_serves(bystander: int, bystander_api: Api, hostile_gateway: GatewayProcess) -> Iterator[None]:
    yield
    assert hostile_gateway.process is not None and hostile_gateway.process.poll() is None, hostile_gateway.log()
    assert bystander_api.http.get("/health").status_code == 200
    result = bystander_api.execute(bystander, "bystander_state['n'] += 0\nprint(bystander_state['n'])")
    assert result["status"] == "ok" and stdout_of(result) == "12345\n", result


@pytest.fixture
def victim(api: Api) -> Iterator[int]:
    kernel = api.start()
    yield kernel
    api.shutdown(kernel)


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


def container_of(engine: docker.DockerClient, gateway: GatewayProcess, kernel: int):
    return engine.containers.get(f"jupycell-{gateway.instance}-{kernel}")


def lines(result: dict) -> list[str]:
    return stdout_of(result).splitlines()


def json_out(result: dict) -> dict:
    """The kernel printed one JSON object as its last line: decode it."""
    out = lines(result)
    assert out, result
    return json.loads(out[-1])
