"""Issue 11: two gateway replicas on one PostgreSQL, one Docker engine. Any replica serves any kernel; a replica
killed (or silent past its lease) has its kernels adopted by the other, memory kept; a stale owner cannot write."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from gateway.adapters.sql.schema import kernels, runs
from testing.harness import (
    HOLD_UNTIL_INTERRUPTED,
    Api,
    BackgroundRun,
    GatewayProcess,
    free_port,
    postgres_database,
    skip_without_postgres,
    sse_events,
    stdout_of,
    unique_instance,
    wait_for,
)
from testing.jupyter import KernelWebsocket, ws_url
from tests.conftest import TEST_SETTINGS, GatewayFactory

LEASE_SECONDS = 3  # short, so that the tests wait little for a lease to expire


class Replicas:
    """Replicas ``a`` and ``b`` of one instance (same kernels dir, same database), each with its client."""

    def __init__(self, factory: GatewayFactory, database_url: str) -> None:
        self.factory, self.database_url = factory, database_url
        self.instance = unique_instance("rep")
        self.engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.gateways: dict[str, GatewayProcess] = {}
        self.apis: dict[str, Api] = {}

    def start(self, name: str) -> Api:
        port = free_port()  # a replica's URL must be known before it listens (other replicas forward to it)
        process = GatewayProcess(
            self.factory.kernels_root / "replicas", instance=self.instance, listen_port=port,
            database_url=self.database_url, replica_id=name, replica_url=f"http://127.0.0.1:{port}",
            lease_seconds=LEASE_SECONDS, output_flush_interval=0.2, **TEST_SETTINGS,
        )  # fmt: skip
        self.gateways[name] = self.factory.start(process)
        self.apis[name] = Api(process.url)
        return self.apis[name]

    def owner(self, kernel_id: int) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(select(kernels.c.owner_replica).where(kernels.c.id == kernel_id)).scalar()

    def running_runs(self, kernel_id: int) -> int:
        with self.engine.connect() as connection:
            query = select(runs.c.id).where(runs.c.kernel_id == kernel_id, runs.c.state == "running")
            return len(connection.execute(query).all())

    def close(self) -> None:
        for api in self.apis.values():
            api.close()
        self.engine.dispose()


@pytest.fixture
def replicas(gateway_factory: GatewayFactory) -> Iterator[Replicas]:
    skip_without_postgres()
    with postgres_database() as url:
        group = Replicas(gateway_factory, url)
        try:
            yield group
        finally:
            group.close()
            gateway_factory.close()  # before the database is dropped


def run_code(api: Api, kernel_id: int, code: str) -> dict[str, Any]:
    return api.execute(kernel_id, code)


def test_a_kernel_started_on_one_replica_is_served_through_the_other(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    kernel = a.start()
    assert replicas.owner(kernel) == "a"

    # Cells, runs and outputs through b: forwarded to a, which keeps serving the kernel.
    assert b.add(kernel, 1, "x = 6 * 7").status_code == 200
    assert b.run(kernel, 1).json()["status"] == "ok"
    assert stdout_of(run_code(b, kernel, "print(x)")) == "42\n"
    outputs = b.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 2}).json()
    assert outputs["outputs"][0]["text"] == "42\n"
    assert [c["number"] for c in b.http.get(f"/kernels/{kernel}/cells").json()["cells"]] == [1, 2]
    assert b.http.get(f"/kernels/{kernel}").json()["state"] == "idle"

    # Server-sent events streamed through.
    assert b.add(kernel, 3, "for i in range(3):\n    print(i, flush=True)").status_code == 200
    with b.http.stream("POST", "/cell/stream", json={"kernel_id": kernel, "cell_number": 3}) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert [kind for kind, _ in events][-1] == "done"
    assert "".join(d["output"]["text"] for kind, d in events if kind == "output") == "0\n1\n2\n"

    # The Jupyter websocket, through b, reaches the same kernel (same memory).
    jupyter_id = a.http.get(f"/kernels/{kernel}").json()["jupyter_id"]
    with KernelWebsocket(f"{ws_url(replicas.gateways['b'].url)}/api/kernels/{jupyter_id}/channels") as ws:
        assert ws.execute("print(x + 1)").stdout == "43\n"
    assert b.http.get(f"/api/kernels/{jupyter_id}").json()["id"] == jupyter_id

    # An unknown kernel is a 404 through either replica; the owner never changed.
    assert b.http.get("/kernels/1234567890123").status_code == 404
    assert replicas.owner(kernel) == "a"
    assert b.shutdown(kernel).status_code == 200
    assert a.http.get(f"/kernels/{kernel}").status_code == 404


def test_a_replica_killed_has_its_kernels_adopted_by_the_other_with_their_memory(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    kernel = a.start()
    assert stdout_of(run_code(a, kernel, "import random\nx = random.random()\nprint(x)")) != ""
    x = a.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 1}).json()["outputs"][0]["text"]
    assert a.add(kernel, 2, HOLD_UNTIL_INTERRUPTED).status_code == 200
    held = BackgroundRun(a, kernel, 2)
    held.wait_for_output()
    wait_for("the run to be recorded in flight", lambda: replicas.running_runs(kernel) == 1)

    replicas.gateways["a"].stop(signal.SIGKILL)
    killed = time.monotonic()
    # No request needed: b's sweep adopts the kernel once a's lease has expired.
    wait_for("b to adopt the kernel", lambda: replicas.owner(kernel) == "b", timeout=120, interval=0.05)
    result = run_code(b, kernel, "print(x)")
    usable = time.monotonic() - killed
    print(f"\nkill -9 of replica a -> its kernel usable through replica b: {usable:.1f} s (lease {LEASE_SECONDS} s)")

    assert stdout_of(result) == x  # same memory
    cell = b.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 2}).json()
    assert cell["status"] == "interrupted"
    assert cell["outputs"][0]["text"] == "holding\n"
    assert replicas.running_runs(kernel) == 0


def test_an_owner_paused_past_its_lease_cannot_write_and_forwards_afterwards(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    kernel = a.start()
    assert stdout_of(run_code(a, kernel, "x = 'kept'\nprint(x)")) == "kept\n"
    assert a.add(kernel, 2, HOLD_UNTIL_INTERRUPTED).status_code == 200
    held = BackgroundRun(a, kernel, 2)
    held.wait_for_output()
    wait_for("the run to be recorded in flight", lambda: replicas.running_runs(kernel) == 1)

    paused = replicas.gateways["a"].process
    assert paused is not None
    paused.send_signal(signal.SIGSTOP)
    try:
        wait_for("b to adopt the kernel", lambda: replicas.owner(kernel) == "b", timeout=120, interval=0.05)
        assert stdout_of(run_code(b, kernel, "print(x)")) == "kept\n"  # adopted with its memory
    finally:
        paused.send_signal(signal.SIGCONT)

    # a's run ends (b interrupted the code) but a may no longer write: its finish is refused, the run says so.
    with pytest.raises(AssertionError, match="421"):
        held.result()
    cell = b.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 2}).json()
    assert cell["status"] == "interrupted"  # b's record stands, not the stale owner's
    # a forwards what it is asked about the kernel to b, the owner now.
    assert stdout_of(run_code(a, kernel, "print(x * 2)")) == "keptkept\n"
    assert replicas.owner(kernel) == "b"


def test_a_replica_restarted_on_its_host_takes_its_kernels_back_at_once(replicas: Replicas) -> None:
    a = replicas.start("a")
    kernel = a.start()
    assert stdout_of(run_code(a, kernel, "y = 5\nprint(y)")) == "5\n"
    replicas.gateways["a"].stop(signal.SIGKILL)
    b = replicas.start("b")  # on the same host: a's process is gone, its lease is not waited for
    assert replicas.owner(kernel) == "b"
    assert stdout_of(run_code(b, kernel, "print(y)")) == "5\n"
