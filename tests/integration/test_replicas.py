"""Issue 11: two gateway replicas on one PostgreSQL, one Docker engine. Any replica serves any kernel; a replica
killed (or silent past its lease) has its kernels adopted by the other, memory kept; a stale owner cannot write."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.types import CallToolResult
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
from tests.conftest import KEYS, TEST_SETTINGS, GatewayFactory
from tests.integration.test_mcp import run as run_mcp
from tests.integration.test_mcp import text_of

LEASE_SECONDS = 3  # short, so that the tests wait little for a lease to expire


class Replicas:
    """Replicas ``a`` and ``b`` of one instance (same kernels dir, same database), each with its client."""

    def __init__(self, factory: GatewayFactory, database_url: str) -> None:
        self.factory, self.database_url = factory, database_url
        self.instance = unique_instance("rep")
        self.engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.gateways: dict[str, GatewayProcess] = {}
        self.apis: dict[str, Api] = {}

    def start(self, name: str, **settings: Any) -> Api:
        """Start replica ``name``; ``settings`` (``keys``, ``admins``, ``lease_seconds``...) override the defaults."""
        port = free_port()  # a replica's URL must be known before it listens (other replicas forward to it)
        settings = {"lease_seconds": LEASE_SECONDS, "output_flush_interval": 0.2, **TEST_SETTINGS, **settings}
        process = GatewayProcess(
            self.factory.kernels_root / "replicas", instance=self.instance, listen_port=port,
            database_url=self.database_url, replica_id=name, replica_url=f"http://127.0.0.1:{port}", **settings,
        )  # fmt: skip
        self.gateways[name] = self.factory.start(process)
        self.apis[name] = Api(process.url, key=KEYS["root"] if settings.get("keys") else None)
        return self.apis[name]

    def api(self, name: str, key: str) -> Api:
        """A client of replica ``name`` with the API key of ``key`` (closed with the group)."""
        api = Api(self.gateways[name].url, key=KEYS[key])
        self.apis[f"{name}-{key}"] = api
        return api

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


def test_a_request_forwarded_to_an_owner_that_stops_answering_ends_with_its_lease(replicas: Replicas) -> None:
    """The owner's host gone silent under a forwarded request (a stopped Swarm node drops packets: no reset): the
    request ends once the owner's lease has expired, with 503 and Retry-After, and the retry is served by the
    replica that adopted the kernel. It does not hang on the connection kept open to the owner."""
    a, b = replicas.start("a"), replicas.start("b")
    kernel = b.start()
    assert stdout_of(run_code(a, kernel, "x = 'kept'\nprint(x)")) == "kept\n"  # forwarded: a keeps a connection
    silent = replicas.gateways["b"].process
    assert silent is not None
    silent.send_signal(signal.SIGSTOP)
    try:
        response = a.http.get(f"/kernels/{kernel}", timeout=60)  # would hang past this timeout before
        if response.status_code == 503:
            assert response.headers["retry-after"] == str(LEASE_SECONDS + 1), response.headers
            assert "does not answer" in response.json()["detail"]
            response = wait_for(
                "the kernel adopted by a", lambda: (r := a.http.get(f"/kernels/{kernel}", timeout=60)).is_success and r
            )
        assert response.status_code == 200 and replicas.owner(kernel) == "a", response.text
        assert stdout_of(run_code(a, kernel, "print(x)")) == "kept\n"
    finally:
        silent.send_signal(signal.SIGCONT)


def test_a_replica_restarted_on_its_host_takes_its_kernels_back_at_once(replicas: Replicas) -> None:
    a = replicas.start("a")
    kernel = a.start()
    assert stdout_of(run_code(a, kernel, "y = 5\nprint(y)")) == "5\n"
    replicas.gateways["a"].stop(signal.SIGKILL)
    b = replicas.start("b")  # on the same host: a's process is gone, its lease is not waited for
    assert replicas.owner(kernel) == "b"
    assert stdout_of(run_code(b, kernel, "print(y)")) == "5\n"


# --- listings: every replica's kernels, through any replica ------------------------------------------------------

UNANSWERED = "x-jupycell-replicas-unanswered"


def listed(api: Api, path: str = "/kernels", **headers: str) -> tuple[list[int], httpx.Response]:
    """The kernel ids a listing shows (``/kernels`` or ``/api/kernels``), in order, and the response."""
    response = api.http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    entries = response.json()["kernels"] if path == "/kernels" else response.json()
    return [entry["kernel_id"] for entry in entries], response


def mcp_call(replicas: Replicas, name: str, key: str, tool: str, **arguments: Any) -> CallToolResult:
    async def scenario(client: Any) -> CallToolResult:
        return await client.call_tool(tool, arguments)

    return run_mcp(replicas.gateways[name].url, scenario, key=KEYS[key])


def mcp_listed(replicas: Replicas, name: str, key: str) -> list[int]:
    result = mcp_call(replicas, name, key, "list_kernels")
    assert not result.is_error
    return [k["kernel_id"] for k in result.structured_content["kernels"]]


def with_keys(replicas: Replicas, name: str, **settings: Any) -> Api:
    return replicas.start(name, keys=KEYS, admins={"root"}, **settings)


def test_listings_through_either_replica_show_every_kernel_once_for_each_key(replicas: Replicas) -> None:
    with_keys(replicas, "a"), with_keys(replicas, "b")
    k1 = replicas.api("a", "alice").start()
    k2 = replicas.api("b", "alice").start()
    k3 = replicas.api("b", "bob").start()
    assert (replicas.owner(k1), replicas.owner(k2), replicas.owner(k3)) == ("a", "b", "b")
    alices, everyone = sorted([k1, k2]), sorted([k1, k2, k3])

    for name in ("a", "b"):
        alice, bob, root = replicas.api(name, "alice"), replicas.api(name, "bob"), replicas.apis[name]
        for path in ("/kernels", "/api/kernels"):
            ids, response = listed(alice, path)
            assert ids == alices and UNANSWERED not in response.headers
            assert listed(bob, path)[0] == [k3]
            assert listed(root, path)[0] == everyone
        assert mcp_listed(replicas, name, "alice") == alices
        assert mcp_listed(replicas, name, "bob") == [k3]

        # The same fields as the owner's own view of the kernel.
        other = k2 if name == "a" else k1
        entry = next(e for e in alice.http.get("/kernels").json()["kernels"] if e["kernel_id"] == other)
        own = replicas.apis["b" if name == "a" else "a"].http.get(f"/kernels/{other}").json()
        assert entry.keys() == own.keys()
        assert {k: entry[k] for k in ("jupyter_id", "owner", "runtime", "cell_count")} == {
            k: own[k] for k in ("jupyter_id", "owner", "runtime", "cell_count")
        }
        jupyter = next(e for e in listed(alice, "/api/kernels")[1].json() if e["kernel_id"] == other)
        assert jupyter["id"] == own["jupyter_id"] and set(jupyter) == {
            "id", "name", "last_activity", "execution_state", "connections", "kernel_id"
        }  # fmt: skip

        # A kernel the MCP tool lists is usable through the same replica: the tool call goes to its owner.
        result = mcp_call(replicas, name, "alice", "execute_code", kernel_id=other, code="print(6 * 7)")
        assert not result.is_error and text_of(result).strip() == "42", text_of(result)
        assert mcp_call(replicas, name, "bob", "execute_code", kernel_id=other, code="print(1)").is_error

        # The header replicas send one another only narrows a listing to the replica asked, under the same key.
        mine = [k for k in alices if replicas.owner(k) == name]
        assert listed(alice, **{"x-jupycell-forwarded-by": "b"})[0] == mine
        anonymous = alice.http.get("/kernels", headers={"Authorization": "", "x-jupycell-forwarded-by": "b"})
        assert anonymous.status_code == 401


def test_a_listing_does_not_wait_for_a_paused_or_killed_replica(replicas: Replicas) -> None:
    # A long lease: b stays "alive" in the store throughout, so a keeps asking it (and its kernels stay b's).
    settings = {"lease_seconds": 60, "replica_listing_timeout": 1}
    with_keys(replicas, "a", **settings), with_keys(replicas, "b", **settings)
    alice_a, bob_a = replicas.api("a", "alice"), replicas.api("a", "bob")
    k1 = alice_a.start()
    k2 = replicas.api("b", "alice").start()
    k3 = replicas.api("b", "bob").start()
    b = replicas.gateways["b"].process
    assert b is not None

    b.send_signal(signal.SIGSTOP)  # b accepts connections but answers nothing
    try:
        for path in ("/kernels", "/api/kernels"):
            ids, response = listed(alice_a, path)
            assert ids == sorted([k1, k2]) and response.headers[UNANSWERED] == "b"
            assert listed(bob_a, path)[0] == [k3]  # the store's kernels are filtered by key too
            assert listed(replicas.apis["a"], path)[0] == sorted([k1, k2, k3])
        stored = next(e for e in listed(alice_a, "/api/kernels")[1].json() if e["kernel_id"] == k2)
        assert stored["connections"] == 0 and stored["execution_state"] in ("idle", "starting")
    finally:
        b.send_signal(signal.SIGCONT)
    ids, response = listed(alice_a)
    assert ids == sorted([k1, k2]) and UNANSWERED not in response.headers  # b answers again

    replicas.gateways["b"].stop(signal.SIGKILL)  # connections refused at once
    for path in ("/kernels", "/api/kernels"):
        ids, response = listed(alice_a, path)
        assert ids == sorted([k1, k2]) and response.headers[UNANSWERED] == "b"
    assert mcp_listed(replicas, "a", "alice") == sorted([k1, k2])
    assert replicas.owner(k2) == "b"  # listed from the store, not adopted: b's lease is not over
