"""Nothing lost: kernels, cells and outputs survive a gateway that is killed or stopped and started again.

Each test runs its own gateway (own instance, kernels dir and database) and restarts it on the same instance,
kernels dir and database. Every test runs on a SQLite file and, when a test server is configured
(JUPYCELL_TEST_POSTGRES_URL, as CI does), on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from sqlalchemy import create_engine, select

from gateway.adapters.sql.database import SQLITE_FILE
from gateway.adapters.sql.schema import runs
from testing.harness import TEST_BACKEND, Api, GatewayProcess, postgres_database, skip_without_postgres, stdout_of
from tests.conftest import GatewayFactory

# each test starts and stops gateways, on SQLite and on PostgreSQL: 3 minutes seen for one under load
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETTINGS = {"mem_limit_mb": 512, "run_timeout": 120, "interrupt_grace": 2, "output_flush_interval": 0.1}


class Gateway:
    """One gateway, started, killed and started again on the same instance, kernels dir and database."""

    def __init__(self, factory: GatewayFactory, process: GatewayProcess) -> None:
        self.factory = factory  # stops every process of this gateway at the end of the test
        self.process = process
        self.api: Api | None = None

    def start(self) -> Api:
        self.factory.start(self.process)
        self.api = Api(self.process.url)
        return self.api

    def stop(self, sig: int) -> None:
        if self.api is not None:
            self.api.close()
        self.process.stop(sig=sig)

    def restart(self, sig: int = signal.SIGKILL) -> Api:
        self.stop(sig)
        self.process = self.process.again()
        return self.start()

    @property
    def instance(self) -> str:
        return self.process.instance

    def container(self, kernel_id: int) -> Any:
        return _docker().containers.get(f"jupycell-{self.instance}-{kernel_id}")

    def containers(self) -> list[Any]:
        return _docker().containers.list(
            all=True, filters={"label": f"jupycell.instance={self.instance}"}, ignore_removed=True
        )

    def socket_dir(self, kernel_id: int) -> Path:
        return self.process.kernels_dir / self.instance / str(kernel_id)

    def stored_runs(self) -> list[dict[str, Any]]:
        url = self.process.settings.get("database_url") or f"sqlite:///{self.process.data_dir / SQLITE_FILE}"
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as connection:
                return [row._asdict() for row in connection.execute(select(runs))]
        finally:
            engine.dispose()


_client: docker.DockerClient | None = None


def _docker() -> docker.DockerClient:
    global _client
    if _client is None:
        _client = docker.from_env()
    return _client


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        if TEST_BACKEND == "agents":
            pytest.skip("the agents backend runs on PostgreSQL only")
        yield {}  # GatewayProcess gives each gateway its own data dir
        return
    skip_without_postgres()
    with postgres_database() as url:
        yield {"database_url": url}


def _gateway(factory: GatewayFactory, database: dict[str, str], **settings: Any) -> Iterator[Gateway]:
    gateway = Gateway(factory, GatewayProcess(factory.kernels_root / "p", **SETTINGS, **database, **settings))
    yield gateway
    if gateway.api is not None:
        gateway.api.close()


@pytest.fixture
def gateway(database: dict[str, str], gateway_factory: GatewayFactory) -> Iterator[Gateway]:
    # database first: set up before, torn down after the factory that stops the gateway
    yield from _gateway(gateway_factory, database)


@pytest.fixture
def keeping_gateway(database: dict[str, str], gateway_factory: GatewayFactory) -> Iterator[Gateway]:
    yield from _gateway(gateway_factory, database, on_stop="keep")


def outputs_of(api: Api, kernel_id: int, cell_number: int) -> dict[str, Any]:
    response = api.http.get("/cell_outputs", params={"kernel_id": kernel_id, "cell_number": cell_number})
    assert response.status_code == 200, response.text
    return response.json()


def kernel_info(api: Api, kernel_id: int) -> dict[str, Any]:
    response = api.http.get(f"/kernels/{kernel_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_kill_9_and_restart_keeps_kernels_with_their_memory_cells_and_outputs(gateway: Gateway) -> None:
    api = gateway.start()
    kernel, other = api.start(), api.start()
    api.add(kernel, 1, "x = 10")
    api.add(kernel, 2, "import random\nsecret = random.random()\ndef f():\n    return x * 3")
    api.add(kernel, 3, "print(f(), secret)")
    before = api.cell(kernel, "run_all").json()
    assert before["status"] == "ok"
    api.add(other, 1, "y = 'other kernel'")
    assert api.run(other, 1).json()["status"] == "ok"
    api.cell(kernel, "edit", 1, "x = 10  # edited")  # cells 1-3 are now stale: that is stored too
    cells_before = api.http.get(f"/kernels/{kernel}/cells").json()
    assert [c["stale"] for c in cells_before["cells"]] == [True, True, True]
    container_before = gateway.container(kernel).id
    key = json.loads((gateway.socket_dir(kernel) / "kernel.json").read_text())["key"]

    api = gateway.restart(signal.SIGKILL)

    assert api.http.get(f"/kernels/{kernel}/cells").json() == cells_before
    assert outputs_of(api, kernel, 3)["outputs"] == before["outputs"][2]["outputs"]
    info = kernel_info(api, kernel)
    assert info["state"] == "idle" and info["last_death"] is None
    assert gateway.container(kernel).id == container_before  # the same container, re-attached
    # Same memory: the random number drawn before the kill, the function, the other kernel's variable.
    assert stdout_of(api.execute(kernel, "print(f(), secret)")) == stdout_of(before["outputs"][2])
    assert stdout_of(api.execute(other, "print(y)")) == "other kernel\n"
    # The HMAC key is stored, but never shown.
    seen = [api.http.get(path).text for path in ("/kernels", f"/kernels/{kernel}", f"/kernels/{kernel}/cells")]
    assert not any(key in text for text in seen)
    assert key not in gateway.process.log_path.read_text(errors="replace")


def test_changes_to_containers_while_the_gateway_is_down_are_found_at_start(gateway: Gateway) -> None:
    api = gateway.start()
    removed, killed, kept = api.start(), api.start(), api.start()
    for kernel in (removed, killed, kept):
        api.add(kernel, 1, "x = 1")
        api.add(kernel, 2, "print('before', x)")
        assert api.cell(kernel, "run_all").json()["status"] == "ok"
    gateway.stop(signal.SIGKILL)

    gateway.container(removed).remove(force=True)
    gateway.container(killed).kill()  # exits with 137
    orphan = _docker().containers.run(
        "jupycell-sandbox:latest",
        entrypoint=["sleep", "600"],
        name=f"jupycell-{gateway.instance}-orphan",
        labels={"jupycell.managed": "true", "jupycell.instance": gateway.instance, "jupycell.kernel_id": "123"},
        network_mode="none",
        detach=True,
    )
    gateway.process = gateway.process.again()
    api = gateway.start()

    assert orphan.id not in [c.id for c in gateway.containers()]
    assert kernel_info(api, kept)["state"] == "idle"
    gone = kernel_info(api, removed)
    assert gone["state"] == "dead" and "removed" in gone["last_death"]
    died = kernel_info(api, killed)
    assert died["state"] == "dead" and "killed by signal 9" in died["last_death"]

    # A dead kernel says so, keeps its cells and outputs, and comes back with a restart.
    refused = api.run(removed, 2)
    assert refused.status_code == 409 and "restart" in refused.json()["detail"]
    assert outputs_of(api, removed, 2)["outputs"][0]["text"] == "before 1\n"
    assert api.http.post(f"/kernels/{removed}/restart").status_code == 200
    assert stdout_of(api.cell(removed, "run_all").json()["outputs"][-1]) == "before 1\n"
    assert api.http.post(f"/kernels/{killed}/restart").status_code == 200
    assert kernel_info(api, killed)["state"] == "idle"


def test_a_run_in_flight_when_the_gateway_is_killed_is_interrupted_with_its_partial_outputs(
    gateway: Gateway,
) -> None:
    api = gateway.start()
    kernel = api.start()
    api.add(kernel, 1, "import time\nfor i in range(10**6):\n    print(i, flush=True)\n    time.sleep(0.05)")
    url = gateway.process.url

    def run_forever() -> None:
        try:
            httpx.post(f"{url}/cell", json={"kernel_id": kernel, "action": "run", "cell_number": 1}, timeout=300)
        except httpx.HTTPError:
            pass  # the gateway is killed under it

    threading.Thread(target=run_forever, daemon=True).start()
    deadline = time.monotonic() + 60
    while not any("\n3\n" in "".join(o["text"] for o in run["outputs"] or []) for run in gateway.stored_runs()):
        assert time.monotonic() < deadline, "partial outputs were never written"
        time.sleep(0.1)

    api = gateway.restart(signal.SIGKILL)

    result = outputs_of(api, kernel, 1)
    assert result["status"] == "interrupted"
    stream, marker = result["outputs"][0], result["outputs"][-1]
    assert stream["text"].startswith("0\n1\n2\n3\n")
    assert marker["output_type"] == "error" and marker["ename"] == "GatewayRestart"
    (run,) = gateway.stored_runs()
    assert run["state"] == "interrupted" and run["outputs"] == result["outputs"]
    # The kernel was re-attached and its loop interrupted: its memory is there and it runs code again.
    assert stdout_of(api.execute(kernel, "print(i > 3)")) == "True\n"


def test_clean_stop_keeping_kernels_leaves_them_running_for_the_next_start(keeping_gateway: Gateway) -> None:
    gateway = keeping_gateway
    api = gateway.start()
    kernel = api.start()
    api.execute(kernel, "x = 42")
    container = gateway.container(kernel).id

    api = gateway.restart(signal.SIGTERM)

    assert gateway.container(kernel).id == container
    assert stdout_of(api.execute(kernel, "print(x)")) == "42\n"


def test_clean_stop_shutting_kernels_down_keeps_their_cells_for_a_restart(gateway: Gateway) -> None:
    api = gateway.start()
    kernel = api.start()
    api.add(kernel, 1, "x = 7")
    api.add(kernel, 2, "print(x)")
    api.cell(kernel, "run_all")

    gateway.stop(signal.SIGTERM)
    assert gateway.containers() == []
    assert not gateway.socket_dir(kernel).exists()
    gateway.process = gateway.process.again()
    api = gateway.start()

    info = kernel_info(api, kernel)
    assert info["state"] == "dead" and "stopped" in info["last_death"]
    assert outputs_of(api, kernel, 2)["outputs"][0]["text"] == "7\n"
    assert api.http.post(f"/kernels/{kernel}/restart").status_code == 200
    assert api.run(kernel, 2).json()["outputs"][-1]["ename"] == "NameError"  # fresh memory
    assert stdout_of(api.cell(kernel, "run_all").json()["outputs"][-1]) == "7\n"
