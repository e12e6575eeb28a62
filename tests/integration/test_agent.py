"""The node agent as a plain process on the local engine: kernels started through its control API and used
over its CurveZMQ relays, exactly as hardened as local ones; intruders and junk refused; deaths reported; an
agent killed with -9 and restarted keeps its kernels' memory and brings their relays back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import zmq

from gateway.agent.client import AgentClient, AgentEvents, AgentRefused, CurveKeys, Death, StartedKernel
from gateway.errors import SandboxUnavailable
from testing.harness import remove_instance_containers
from tests.support_agent import AgentKeys, AgentProcess, evaluate, relayed_kernel, run, wait_ready

MEM_LIMIT_MB = 256
GVISOR = os.environ.get("JUPYCELL_RUNTIME") == "runsc"


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    with tempfile.TemporaryDirectory(prefix="jca-") as root:
        keys = AgentKeys(Path(root) / "keys")
        process = AgentProcess(Path(root), keys, mem_limit_mb=MEM_LIMIT_MB).start()
        try:
            yield process
        finally:
            process.stop()
            remove_instance_containers(process.instance)


def start_kernel(agent: AgentProcess, kernel_id: int | None = None) -> tuple[int, str, StartedKernel]:
    kernel_id = kernel_id or secrets.randbelow(2**40) + 1
    key = secrets.token_hex(32)
    started = run(lambda c: c.start(kernel_id, key), agent)
    return kernel_id, key, started


@pytest.fixture
def kernel(agent: AgentProcess) -> Iterator[tuple[int, str, StartedKernel]]:
    started = start_kernel(agent)
    yield started
    if agent.alive():
        run(lambda c: c.remove(started[0]), agent)


def test_kernel_started_through_the_agent_runs_code_over_the_curve_relay(agent, kernel) -> None:
    kernel_id, key, started = kernel
    client = relayed_kernel(agent, key, started.ports)
    try:
        assert wait_ready(client, 60), agent.log()
        assert evaluate(client, "1+1") == "2"
        run(lambda c: c.seal(kernel_id), agent)
        assert evaluate(client, "x = 6 * 7\nx") == "42"  # a sealed kernel keeps working
    finally:
        client.stop_channels()
    status = run(lambda c: c.status(kernel_id), agent)
    assert status["running"] is True and status["relay"] is True and status["cause"] is None
    listed = {k["kernel_id"]: k for k in run(lambda c: c.list(), agent)}
    assert listed[kernel_id]["ports"] == started.ports and listed[kernel_id]["container_id"] == started.container_id
    capacity = run(lambda c: c.capacity(), agent)
    assert capacity["kernels"] >= 1 and capacity["limits"]["mem_limit_mb"] == MEM_LIMIT_MB
    assert isinstance(run(lambda c: c.logs(kernel_id, 200), agent), str)
    assert run(lambda c: c.logs(424242, 10), agent) == ""  # no such kernel: no logs, no error

    run(lambda c: c.remove(kernel_id), agent)
    assert kernel_id not in {k["kernel_id"] for k in run(lambda c: c.list(), agent)}
    assert not (agent.kernels_dir / agent.instance / str(kernel_id)).exists()
    run(lambda c: c.remove(kernel_id), agent)  # idempotent


def test_container_is_made_exactly_like_a_local_kernel(agent, kernel) -> None:
    kernel_id, _, started = kernel
    engine = docker.from_env()
    try:
        container = engine.containers.get(started.container_id)
    finally:
        engine.close()
    host, config = container.attrs["HostConfig"], container.attrs["Config"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["Memory"] == MEM_LIMIT_MB * 2**20 and host["PidsLimit"] == 256
    assert config["User"] == "1000:1000"
    assert config["Labels"]["jupycell.instance"] == agent.instance
    assert config["Labels"]["jupycell.kernel_id"] == str(kernel_id)
    mounts = {m["Source"]: m["RW"] for m in container.attrs["Mounts"]}
    wheels = Path(agent.env["JUPYCELL_PACKAGES_DIR"]) / "kernels" / agent.instance / str(kernel_id)
    assert mounts == {str(agent.kernels_dir / agent.instance / str(kernel_id)): True, str(wheels): False}
    assert "/opt/jupycell-packages" in host["Tmpfs"]  # packages on demand: the wheels read-only, the tmpfs


def test_the_agent_reports_its_images_and_starts_none_off_its_own_list(agent) -> None:
    image = os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest")
    assert run(lambda c: c.capacity(), agent)["images"] == [image]  # no JUPYCELL_ALLOWED_IMAGES: its own only
    for asked in ("alpine:latest", "jupycell-gateway:latest"):  # whatever a gateway asks for
        with pytest.raises(AgentRefused, match=f"image '{asked}' is not allowed on node") as refused:
            run(lambda c, a=asked: c.start(secrets.randbelow(2**40) + 1, secrets.token_hex(32), image=a), agent)
        assert refused.value.type == "bad_request"
    with pytest.raises(AgentRefused, match="image"):  # not an image reference at all: the schema refuses it
        run(lambda c: c.start(1, secrets.token_hex(32), image="--privileged"), agent)
    assert [entry for entry in run(lambda c: c.list(), agent) if entry["running"]] == []


def test_unknown_curve_key_and_plaintext_clients_get_nothing(agent, kernel) -> None:
    kernel_id, key, started = kernel
    with pytest.raises(SandboxUnavailable, match="did not answer"):
        run(lambda c: c.ping(timeout=2), agent, agent.keys.intruder)
    # the gateway's own keypair, but expecting another server key (an impostor agent, or a stale key): no session
    wrong_server = CurveKeys(zmq.curve_keypair()[0], agent.keys.gateway.client)
    with pytest.raises(SandboxUnavailable, match="did not answer"):
        run(lambda c: c.ping(timeout=2), agent, wrong_server)

    # a plaintext ZMQ client on the control port and on a relay port
    context = zmq.Context()
    try:
        for port in (agent.control_port, started.ports["shell"]):
            plain = context.socket(zmq.DEALER)
            plain.linger = 0
            plain.connect(f"tcp://127.0.0.1:{port}")
            plain.send(b'{"v": 1, "id": "x", "op": "ping"}', zmq.NOBLOCK)
            assert plain.poll(2000) == 0
            plain.close()
    finally:
        context.term()

    intruder = relayed_kernel(agent, key, started.ports, agent.keys.intruder)
    try:
        assert wait_ready(intruder, 3) is False
    finally:
        intruder.stop_channels()
    # ...while the gateway's key still works
    client = relayed_kernel(agent, key, started.ports)
    try:
        assert wait_ready(client, 60)
    finally:
        client.stop_channels()


def test_junk_gets_errors_or_nothing_and_never_ends_the_agent(agent, kernel) -> None:
    _, _, started = kernel
    for port in (agent.control_port, agent.events_port, *started.ports.values()):
        # random bytes, and a ZMTP greeting asking for the NULL (plaintext) mechanism
        for junk_bytes in (secrets.token_bytes(4096), b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 100):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    raw.sendall(junk_bytes)
                    raw.recv(100)  # the agent answers with its own greeting, or closes

    async def junk(client: AgentClient) -> list[Any]:
        sock = client._socket  # the authenticated DEALER, for frames the client's API would never send
        replies = []
        for frames in (
            [b"not json"],
            [b"[1, 2, 3]"],
            [b'{"v": 1, "id": "a", "op": "format_disk"}'],
            [b'{"v": 2, "id": "b", "op": "ping"}'],
            [b'{"v": 1, "id": "c", "op": "start", "kernel_id": -1, "key": "zz"}'],
            [b'{"v": 1, "id": "d", "op": "ping", "extra": true}'],
            [b"[" * 60_000],
            [b"two", b"frames"],
        ):
            await sock.send_multipart(frames)
            replies.append(await asyncio.wait_for(sock.recv(), 10))
        await sock.send(b"x" * (2**20))  # over the size cap: the agent drops the connection, nothing else
        return replies

    replies = [json.loads(r) for r in run(junk, agent)]
    assert all(r["error"]["type"] == "bad_request" for r in replies), replies
    assert [r["id"] for r in replies[2:6]] == ["a", "b", "c", "d"]

    async def refusals(client: AgentClient) -> list[str]:
        found = []
        for call in (
            lambda: client.start(started_id, secrets.token_hex(32)),  # already there
            lambda: client.start(7, secrets.token_hex(32), runtime="kata"),
            lambda: client.seal(1234567),
        ):
            try:
                await call()
            except AgentRefused as error:
                found.append(error.type)
        return found

    started_id = kernel[0]
    assert run(refusals, agent) == ["conflict", "bad_request", "not_found"]
    assert agent.alive()
    assert run(lambda c: c.ping(), agent)


def test_out_of_memory_death_is_reported_with_its_cause(agent, kernel) -> None:
    kernel_id, key, started = kernel
    deaths: list[Death] = []

    async def watch_and_kill() -> None:
        events = AgentEvents(
            "127.0.0.1", agent.events_port, agent.keys.gateway, on_death=deaths.append, on_resync=lambda: None
        )
        try:
            client = relayed_kernel(agent, key, started.ports)
            try:
                assert await asyncio.to_thread(wait_ready, client, 60)
                deadline = time.monotonic() + 30  # subscribed once a heartbeat arrives (PUB drops before that)
                while events.last_seen is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                client.execute("blob = bytearray(1024 * 2**20)")
            finally:
                client.stop_channels()
            deadline = time.monotonic() + 60
            while not any(d.kernel_id == kernel_id for d in deaths) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            events.close()

    asyncio.run(watch_and_kill())
    death = next(d for d in deaths if d.kernel_id == kernel_id)
    if GVISOR and not death.oom_killed:  # under gVisor the engine may not flag the kill as OOM: it shows as SIGKILL
        assert death.cause == "killed by signal 9 (exit code 137)"
    else:
        assert death.oom_killed is True and death.cause == f"out of memory (limit {MEM_LIMIT_MB} MiB)"
    status = run(lambda c: c.status(kernel_id), agent)
    assert status["running"] is False and status["oom_killed"] is death.oom_killed and status["cause"] == death.cause


def test_agent_killed_and_restarted_keeps_kernel_memory_and_relays(agent, kernel) -> None:
    kernel_id, key, started = kernel
    boot_before = run(lambda c: c.ping(), agent)
    client = relayed_kernel(agent, key, started.ports)
    resyncs: list[float] = []

    async def restart_while_watching() -> None:
        events = AgentEvents(
            "127.0.0.1",
            agent.events_port,
            agent.keys.gateway,
            on_death=lambda d: None,
            on_resync=lambda: resyncs.append(time.monotonic()),
        )
        try:
            deadline = time.monotonic() + 30
            while not resyncs and time.monotonic() < deadline:  # the first heartbeat counts as one
                await asyncio.sleep(0.1)
            seen = len(resyncs)
            await asyncio.to_thread(agent.kill)
            await asyncio.to_thread(agent.start)
            deadline = time.monotonic() + 30
            while len(resyncs) == seen and time.monotonic() < deadline:  # a new boot id: list again
                await asyncio.sleep(0.1)
            assert len(resyncs) > seen
        finally:
            events.close()

    try:
        assert wait_ready(client, 60)
        assert evaluate(client, "memory = 'kept'\nmemory") == "'kept'"
        asyncio.run(restart_while_watching())
        assert run(lambda c: c.ping(), agent) != boot_before
        assert wait_ready(client, 60), agent.log()  # the same client: its sockets reconnected by themselves
        assert evaluate(client, "memory") == "'kept'"
    finally:
        client.stop_channels()
    listed = {k["kernel_id"]: k for k in run(lambda c: c.list(), agent)}
    assert listed[kernel_id]["ports"] == started.ports and listed[kernel_id]["running"] is True


def test_a_signal_through_the_agent_reaches_the_kernel_and_its_cause_is_reported(agent, kernel) -> None:
    kernel_id, _, _ = kernel
    run(lambda c: c.signal(kernel_id, "SIGKILL"), agent)
    deadline = time.monotonic() + 30
    status = run(lambda c: c.status(kernel_id), agent)
    while status["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
        status = run(lambda c: c.status(kernel_id), agent)
    assert status["running"] is False and status["cause"] == "killed by signal 9 (exit code 137)"
    run(lambda c: c.signal(kernel_id, "SIGINT"), agent)  # not running any more: fine


def test_a_kernel_flooding_a_client_that_does_not_read_never_stalls_the_other_kernels(agent, kernel) -> None:
    """All relays share one thread: a full queue must drop messages, never block it."""
    _, key, started = kernel
    other_id, other_key, other = start_kernel(agent)
    flooding = relayed_kernel(agent, key, started.ports)
    quiet = relayed_kernel(agent, other_key, other.ports)
    try:
        assert wait_ready(flooding, 60) and wait_ready(quiet, 60)
        # 5000 IOPub messages to a client that reads none of them: past every high-water mark on the way
        flooding.execute("from IPython.display import display\nfor i in range(5000): display(i)")
        for n in range(3):
            assert evaluate(quiet, f"{n} + 1", timeout=120) == str(n + 1)
        assert flooding.get_shell_msg(timeout=300)["content"]["status"] == "ok"  # the flood ended; its kernel answers
        assert agent.alive()
    finally:
        flooding.stop_channels()
        quiet.stop_channels()
        run(lambda c: c.remove(other_id), agent)


def test_short_requests_are_answered_while_kernel_starts_wait_for_a_slot() -> None:
    """One slot per kind: two starts (the second waits for the first), and a ping sent after them is answered at once
    (it used to wait behind both: a seal behind 30 concurrent starts under gVisor missed its 10 s)."""
    with tempfile.TemporaryDirectory(prefix="jca-") as root:
        keys = AgentKeys(Path(root) / "keys")
        agent = AgentProcess(Path(root), keys, mem_limit_mb=MEM_LIMIT_MB, agent_max_concurrent_requests=1)
        agent.start()
        try:

            async def scenario(client: AgentClient) -> bool:
                ids = [secrets.randbelow(2**40) + 1 for _ in range(2)]
                starts = [asyncio.ensure_future(client.start(i, secrets.token_hex(32), timeout=120)) for i in ids]
                await asyncio.sleep(0)  # both sent before the ping
                await client.ping(timeout=60)
                answered_first = not all(start.done() for start in starts)
                await asyncio.gather(*starts)
                for kernel_id in ids:
                    await client.remove(kernel_id)
                return answered_first

            assert run(scenario, agent), "the ping waited for both kernel starts"
        finally:
            agent.stop()
            remove_instance_containers(agent.instance)
