"""The gateway with ``JUPYCELL_BACKEND=agents``: kernels on node agents run as plain processes on the local engine
(each with its own instance and node name), the gateway on a PostgreSQL database of its own.

Placement over two nodes and ``max_kernels_per_node``; an agent restarted under a kernel (memory kept); an agent
killed for good (its kernels dead with ``node <name> lost``, started again on the other node, cells kept); a
gateway with a key the agents do not allow, and intruders on a kernel's relay ports, get nothing.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import zmq
import zmq.auth

from gateway.agent.client import AgentRefused
from gateway.errors import KernelStartFailed
from testing.agents import AgentKeys, AgentProcess, relayed_kernel, run, wait_ready
from testing.harness import (
    Api,
    GatewayProcess,
    free_port,
    postgres_database,
    remove_instance_containers,
    skip_without_postgres,
    stdout_of,
    unique_instance,
    wait_for,
)
from testing.images import READ_MARKER, marked_image
from testing.jupyter import KernelWebsocket, ws_url

# What is tested here does not depend on the kernels' runtime; under gVisor, `make test-agents` runs the escape suite
# through an agent.
pytestmark = pytest.mark.skipif(
    os.environ.get("JUPYCELL_RUNTIME") == "runsc", reason="runtime-independent: run once, under runc"
)


class Nodes:
    """Agents on the local engine, named ``node-a``, ``node-b``...; each one's containers removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = AgentKeys(root / "keys")
        self.agents: dict[str, AgentProcess] = {}

    def start(self, *names: str, **settings: Any) -> list[AgentProcess]:
        """Start these agents, each with ``settings`` (``JUPYCELL_<NAME>``) too."""
        for name in names:
            self.agents[name] = AgentProcess(
                self.root, self.keys, agent_node_name=name, mem_limit_mb=256, **settings
            ).start()
        return [self.agents[name] for name in names]

    def kernels_on(self, name: str) -> set[int]:
        return {entry["kernel_id"] for entry in run(lambda c: c.list(), self.agents[name]) if entry["running"]}

    def gateway_settings(self, database_url: str, **settings: Any) -> dict[str, Any]:
        return {
            "backend": "agents",
            "agents": ",".join(agent.address for agent in self.agents.values()),
            "database_url": database_url,
            "gateway_curve_secret_file": self.keys.gateway_secret_file,
            "agent_curve_public_file": self.keys.agent_public_file,
            "mem_limit_mb": 256,
            "run_timeout": 60,
            "interrupt_grace": 2,
            **settings,
        }

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
            remove_instance_containers(agent.instance)


@pytest.fixture
def nodes() -> Iterator[Nodes]:
    skip_without_postgres()
    with tempfile.TemporaryDirectory(prefix="jcn-") as root, ExitStack() as stack:
        nodes = Nodes(Path(root))
        stack.callback(nodes.close)
        yield nodes


@pytest.fixture
def database() -> Iterator[str]:
    skip_without_postgres()
    with postgres_database() as url:
        yield url


def gateway_on(nodes: Nodes, gateway_factory: Any, database: str, **settings: Any) -> tuple[GatewayProcess, Api]:
    gateway = gateway_factory("agents", **nodes.gateway_settings(database, **settings))
    return gateway, Api(gateway.url)


def test_kernels_spread_over_two_nodes_up_to_max_kernels_per_node(nodes, gateway_factory, database) -> None:
    nodes.start("node-a", "node-b")
    gateway, api = gateway_on(nodes, gateway_factory, database, max_kernels_per_node=2)
    with api:
        kernels = [api.start() for _ in range(4)]
        assert nodes.kernels_on("node-a") | nodes.kernels_on("node-b") == set(kernels)
        assert len(nodes.kernels_on("node-a")) == len(nodes.kernels_on("node-b")) == 2
        refused = api.http.post("/start")
        assert refused.status_code == 429, refused.text
        assert "max_kernels_per_node=2" in refused.json()["detail"]
        for kernel_id in kernels:  # every one answers through its node's relay
            assert stdout_of(api.execute(kernel_id, f"print({kernel_id} % 1000)")).strip() == str(kernel_id % 1000)
        assert api.shutdown(kernels[0]).status_code == 200
        assert kernels[0] not in nodes.kernels_on("node-a") | nodes.kernels_on("node-b")
        assert api.start() not in kernels  # a freed slot is used again


def test_the_warm_pool_keeps_its_size_on_each_node(nodes, gateway_factory, database) -> None:
    nodes.start("node-a", "node-b")
    gateway, api = gateway_on(nodes, gateway_factory, database, pool_size=1)
    with api:

        def one_on_each() -> dict[str, Any] | None:
            pool = api.http.get("/pool").json()
            return pool if pool.get("nodes") == {"node-a": {"ready": 1}, "node-b": {"ready": 1}} else None

        pool = wait_for("a warm kernel on each node", one_on_each, timeout=180)
        assert pool["size"] == 1 and pool["ready"] == 2 and pool["per_node"] is True, pool
        warm = {name: nodes.kernels_on(name) for name in ("node-a", "node-b")}
        assert [len(kernels) for kernels in warm.values()] == [1, 1]  # the pool's containers
        kernel_id = api.start()
        assert api.http.get("/pool").json()["hits"] == 1
        claimed_on = next(name for name, kernels in warm.items() if kernel_id in kernels)
        assert stdout_of(api.execute(kernel_id, "print(6 * 7)")) == "42\n"
        wait_for("the node's pool refilled", one_on_each, timeout=180)
        assert len(nodes.kernels_on(claimed_on)) == 2 and nodes.kernels_on(claimed_on) > warm[claimed_on]


def test_agent_restart_keeps_kernel_memory(nodes, gateway_factory, database) -> None:
    (agent,) = nodes.start("node-a")
    gateway, api = gateway_on(nodes, gateway_factory, database)
    with api:
        kernel_id = api.start()
        assert api.execute(kernel_id, "x = 6 * 7")["status"] == "ok"
        agent.kill()
        agent.start()  # same ports, same state directory: the relay comes back on the same ports

        def answers() -> str | None:  # runs lost while the relay reconnects end at their short deadline
            result = api.execute(kernel_id, "print(x)", timeout=10)
            return stdout_of(result).strip() if result["status"] == "ok" else None

        assert wait_for("the kernel through the restarted agent", answers, timeout=120) == "42"
        described = api.http.get(f"/kernels/{kernel_id}").json()
        assert described["state"] == "idle" and described["last_death"] is None


def test_agent_back_at_a_new_address_kernel_reconnected_with_its_memory(nodes, gateway_factory, database) -> None:
    """A Swarm force-update: the node's agent comes back at another address (127.0.0.2 here), same node name and
    relay ports. The gateway follows it and re-points the kernel's connections: its memory is there through the
    HTTP API and through a Jupyter websocket opened before the move; a run cut off by the move says so. A warm-pool
    kernel started before the move is handed out answering at the new address too."""
    (agent,) = nodes.start("node-a")
    moved = f"127.0.0.2:{agent.control_port}"
    gateway, api = gateway_on(
        nodes, gateway_factory, database, agents=f"{agent.address},{moved}", agents_refresh_interval=0.5, pool_size=1
    )
    with api:
        model = api.http.post("/api/kernels", json={"name": "python3"}).json()
        kernel_id = model["kernel_id"]
        wait_for("a warm-pool kernel ready", lambda: api.http.get("/pool").json()["ready"] == 1 or None, timeout=120)
        ws = KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{model['id']}/channels")
        try:
            assert ws.execute("x = 6 * 7").reply["status"] == "ok"
            agent.kill()
            agent.start(host="127.0.0.2")  # same node name, ports and state directory; another address
            assert agent.address == moved
            cut_off: list[str] = []

            def answers() -> str | None:
                result = api.execute(kernel_id, "print(x)", timeout=60)
                if result["status"] != "ok":
                    cut_off.append(json.dumps(result["outputs"]))
                    return None
                return stdout_of(result).strip()

            assert wait_for("the kernel at the agent's new address", answers, timeout=120) == "42"
            assert all("ConnectionMoved" in outputs for outputs in cut_off), cut_off
            assert ws.execute("print(x + 1)", timeout=60).stdout == "43\n"
        finally:
            ws.close()
        described = api.http.get(f"/kernels/{kernel_id}").json()
        assert described["state"] == "idle" and described["last_death"] is None, described
        warm = api.http.post("/start").json()["kernel_id"]  # the pool's kernel, started before the move
        assert stdout_of(api.execute(warm, "print(6 * 7)", timeout=30)) == "42\n"


def test_agents_trading_addresses_are_each_followed_to_their_new_one(nodes, gateway_factory, database) -> None:
    """A Swarm force-update replaces one agent after the other, and a replaced task may get the IP another node's
    agent had: node-b comes back at node-a's old address. The gateway goes by the node each agent names, not by
    the address: each kernel keeps its memory, and neither node is taken for the other or declared lost."""
    agent_a = AgentProcess(nodes.root, nodes.keys, agent_node_name="node-a", mem_limit_mb=256).start()
    agent_b = AgentProcess(
        nodes.root, nodes.keys, agent_node_name="node-b", mem_limit_mb=256,
        ports=(agent_a.control_port, agent_a.events_port),
    ).start(host="127.0.0.2")  # fmt: skip
    nodes.agents.update({"node-a": agent_a, "node-b": agent_b})
    port = agent_a.control_port
    gateway, api = gateway_on(
        nodes, gateway_factory, database, max_kernels_per_node=1, agents_refresh_interval=0.5,
        agents=",".join(f"127.0.0.{host}:{port}" for host in (1, 2, 3)), agents_lost_after=60,
    )  # fmt: skip
    with api:
        kernels = {name: api.start() for name in ("node-a", "node-b")}  # one per node
        for name, kernel_id in kernels.items():
            assert nodes.kernels_on(name) == {kernel_id}
            assert api.execute(kernel_id, f"kept = '{name}'")["status"] == "ok"
        agent_a.kill()
        agent_a.start(host="127.0.0.3")
        agent_b.kill()
        agent_b.start(host="127.0.0.1")  # node-a's old address

        def kept(kernel_id: int) -> str | None:
            result = api.execute(kernel_id, "print(kept)", timeout=30)
            return stdout_of(result).strip() if result["status"] == "ok" else None

        for name, kernel_id in kernels.items():
            assert wait_for(f"the kernel on {name}", lambda k=kernel_id: kept(k), timeout=120) == name
            described = api.http.get(f"/kernels/{kernel_id}").json()
            assert described["state"] == "idle" and described["last_death"] is None, described
        assert api.shutdown(kernels["node-a"]).status_code == 200
        assert nodes.kernels_on("node-a") == set()  # asked of node-a's agent, at its new address
        assert nodes.kernels_on("node-b") == {kernels["node-b"]}
        again = api.start()  # the freed slot: only node-a has room
        assert nodes.kernels_on("node-a") == {again}


def test_node_lost_kernels_dead_with_the_cause_and_restarted_on_the_other_node(
    nodes, gateway_factory, database
) -> None:
    agent_a, _ = nodes.start("node-a", "node-b")
    gateway, api = gateway_on(
        nodes, gateway_factory, database, max_kernels_per_node=1, agents_lost_after=3, agents_refresh_interval=1
    )
    with api:
        kernel_id = api.start()  # node-a first: both are empty, and names break the tie
        assert nodes.kernels_on("node-a") == {kernel_id}
        assert api.execute(kernel_id, "y = 'kept'\nprint(y)")["status"] == "ok"
        agent_a.kill()  # and not restarted: node-a is gone

        def lost() -> dict[str, Any] | None:
            described = api.http.get(f"/kernels/{kernel_id}").json()
            return described if "node node-a lost" in (described["last_death"] or "") else None

        wait_for("the kernel reported lost with its node", lost, timeout=120)
        cells = api.http.get(f"/kernels/{kernel_id}/cells").json()["cells"]
        assert [cell["code"] for cell in cells] == ["y = 'kept'\nprint(y)"]
        assert stdout_of(cells[0]).strip() == "kept"  # outputs kept too

        restarted = api.http.post(f"/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200, restarted.text
        assert nodes.kernels_on("node-b") == {kernel_id}
        assert api.run(kernel_id, 1).json()["status"] == "ok"
        assert stdout_of(api.execute(kernel_id, "print(y)")).strip() == "kept"


def replicas_on(nodes: Nodes, gateway_factory: Any, database: str, **settings: Any) -> Any:
    """A function starting replica ``name`` of one gateway instance on the agents and the database (lease 3 s)."""
    instance = unique_instance("rn")
    settings = nodes.gateway_settings(
        database, agents_lost_after=3, agents_refresh_interval=1, lease_seconds=3, **settings
    )

    def replica(name: str) -> tuple[GatewayProcess, Api]:
        port = free_port()
        process = GatewayProcess(
            nodes.root / "replicas", instance=instance, listen_port=port, replica_id=name,
            replica_url=f"http://127.0.0.1:{port}", **settings,
        )  # fmt: skip
        return gateway_factory.start(process), Api(process.url)

    return replica


def test_a_replica_killed_and_started_again_at_once_keeps_its_kernels_memory(nodes, gateway_factory, database) -> None:
    """Swarm restarts a killed gateway task at once, as a new replica: the kernel keeps its memory, whichever
    replica takes it, and answers through the other one."""
    nodes.start("node-a", "node-b")
    replica = replicas_on(nodes, gateway_factory, database, pool_size=1)
    (_, a), (b_process, b) = replica("a"), replica("b")
    with a, b:
        wait_for("a warm kernel on each node", lambda: a.http.get("/pool").json()["ready"] == 2, timeout=180)
        kernel_id = b.start()  # from the pool, as on the Swarm
        assert b.http.get("/pool").json()["hits"] == 1
        assert b.execute(kernel_id, "kept = 6 * 7")["status"] == "ok"
        b_process.stop(signal.SIGKILL)
        _, b_again = replica("b2")
        with b_again:

            def kept() -> str | None:
                try:
                    return stdout_of(a.execute(kernel_id, "print(kept)")).strip() or None
                except (AssertionError, KeyError, httpx.HTTPError):
                    return None

            assert wait_for("the kernel answering through replica a", kept, timeout=120) == "42"
            assert stdout_of(b_again.execute(kernel_id, "print(kept)")).strip() == "42"


def test_a_replica_lost_with_its_kernel_s_node_leaves_the_kernel_reported_lost_by_the_other(
    nodes, gateway_factory, database
) -> None:
    """A stopped Swarm node takes a gateway replica and an agent at once: the other replica adopts the replica's
    kernel, finds its node silent, and reports it lost with the node's name; it restarts on the other node."""
    agent_a, _ = nodes.start("node-a", "node-b")
    replica = replicas_on(nodes, gateway_factory, database, max_kernels_per_node=1)
    (_, a), (b_process, b) = replica("a"), replica("b")
    with a, b:
        kernel_id = b.start()  # owned by b; on node-a (both are empty, and names break the tie)
        assert nodes.kernels_on("node-a") == {kernel_id}
        assert b.execute(kernel_id, "y = 'kept'\nprint(y)")["status"] == "ok"
        b_process.stop(signal.SIGKILL)
        agent_a.kill()

        def lost() -> dict[str, Any] | None:
            described = a.http.get(f"/kernels/{kernel_id}")
            if described.status_code != 200:
                return None  # 503 while b's lease runs out
            return described.json() if described.json()["last_death"] else None

        described = wait_for("the kernel reported dead by replica a", lost, timeout=120)
        assert described["last_death"] == "node node-a lost", described
        cells = a.http.get(f"/kernels/{kernel_id}/cells").json()["cells"]
        assert [cell["code"] for cell in cells] == ["y = 'kept'\nprint(y)"]
        restarted = a.http.post(f"/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200, restarted.text
        assert nodes.kernels_on("node-b") == {kernel_id}
        assert stdout_of(a.execute(kernel_id, "print(1 + 1)")).strip() == "2"


def test_a_gateway_restarted_while_a_node_is_silent_takes_its_kernel_back_once_it_answers(
    nodes, gateway_factory, database
) -> None:
    """The node's agent does not answer while the gateway starts (its listing times out): the kernel there is not
    declared removed; it is re-attached, memory kept, once the agent answers again."""
    agent_a, _ = nodes.start("node-a", "node-b")
    gateway, api = gateway_on(nodes, gateway_factory, database, max_kernels_per_node=1, on_stop="keep")
    with api:
        kernel_id = api.start()  # node-a first: both are empty, and names break the tie
        assert nodes.kernels_on("node-a") == {kernel_id}
        assert api.execute(kernel_id, "kept = 'yes'")["status"] == "ok"
    gateway.stop()
    assert agent_a.process is not None
    agent_a.process.send_signal(signal.SIGSTOP)
    again = gateway.again()
    seen = again.log_path.stat().st_size  # the log is the instance's: what the first process wrote stays

    def resume_once_recovery_decided() -> None:  # the start-up's recovery looked at node-a while it was silent
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = again.log_path.read_text(errors="replace")[seen:]
            if "did not answer yet" in text or "reconciled instance" in text:
                break
            time.sleep(0.2)
        agent_a.process.send_signal(signal.SIGCONT)

    resume = threading.Thread(target=resume_once_recovery_decided)
    resume.start()
    try:
        gateway_factory.start(again)
    finally:
        resume.join()
    with Api(again.url) as api:
        described = api.http.get(f"/kernels/{kernel_id}").json()
        assert described["last_death"] is None, described
        assert stdout_of(api.execute(kernel_id, "print(kept)")).strip() == "yes"
    assert "1 kernels are on nodes that did not answer yet" in again.log()  # the case under test did happen


def test_a_gateway_whose_key_the_agents_do_not_allow_cannot_start(nodes, gateway_factory, database) -> None:
    nodes.start("node-a")
    zmq.auth.create_certificates(nodes.root, "intruder")
    settings = nodes.gateway_settings(database, gateway_curve_secret_file=nodes.root / "intruder.key_secret")
    gateway = GatewayProcess(nodes.root / "gw", **settings)
    with pytest.raises(RuntimeError) as refused:
        gateway.start(timeout=90)
    assert "no agent answers" in str(refused.value) and "Curve key" in str(refused.value)


def test_intruders_on_a_kernels_relay_ports_get_nothing(nodes, gateway_factory, database) -> None:
    (agent,) = nodes.start("node-a")
    gateway, api = gateway_on(nodes, gateway_factory, database)
    with api:
        kernel_id = api.start()
        (entry,) = [e for e in run(lambda c: c.list(), agent) if e["kernel_id"] == kernel_id]
        intruder = relayed_kernel(agent, "0" * 64, entry["ports"], nodes.keys.intruder)
        try:
            assert wait_ready(intruder, 3) is False
        finally:
            intruder.stop_channels()
        context = zmq.Context.instance()
        plain = context.socket(zmq.DEALER)
        plain.linger = 0
        try:
            plain.connect(f"tcp://127.0.0.1:{entry['ports']['shell']}")
            plain.send_multipart([b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", b"{}"], flags=zmq.NOBLOCK)
            assert plain.poll(2000) == 0
        except zmq.Again:
            pass  # not even connected: refused before a message could go
        finally:
            plain.close()
        assert stdout_of(api.execute(kernel_id, "print('still fine')")).strip() == "still fine"


def container_of(kernel_id: int) -> dict[str, Any]:
    """The image of the kernel's container, and how it is made (its host config and user; mounts aside)."""
    engine = docker.from_env()
    try:
        (container,) = engine.containers.list(filters={"label": f"jupycell.kernel_id={kernel_id}"})
        attrs = container.attrs
    finally:
        engine.close()
    host = {k: v for k, v in attrs["HostConfig"].items() if k not in ("Binds", "Mounts")}
    return {"image": attrs["Config"]["Image"], "hardening": {**host, "User": attrs["Config"]["User"]}}


@pytest.fixture(scope="module")
def custom_image() -> Iterator[str]:
    with marked_image(os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest")) as tag:
        yield tag


def test_kernels_of_a_custom_image_go_only_to_nodes_that_have_it_and_fail_clearly_when_none_does(
    nodes, gateway_factory, database, custom_image
) -> None:
    absent = f"{custom_image}-absent"  # allowed on node-b, but in no engine
    (agent_a,) = nodes.start("node-a", allowed_images=custom_image)
    (agent_b,) = nodes.start("node-b", allowed_images=absent)
    assert run(lambda c: c.capacity(), agent_a)["images"][1:] == [custom_image]
    assert run(lambda c: c.capacity(), agent_b)["images"][1:] == []  # allowed, not in its engine: not reported

    # The agent decides, whatever a gateway asks: an image off its own list, or not in its engine, is refused.
    with pytest.raises(AgentRefused, match=f"{custom_image}' is not allowed on node node-b") as refused:
        run(lambda c: c.start(7001, "ab" * 32, image=custom_image), agent_b)
    assert refused.value.type == "bad_request"
    with pytest.raises(KernelStartFailed, match="is allowed on node node-b but not in its engine"):
        run(lambda c: c.start(7002, "ab" * 32, image=absent), agent_b)  # never pulled
    assert nodes.kernels_on("node-b") == set()

    gateway, api = gateway_on(
        nodes, gateway_factory, database, max_kernels_per_node=2, allowed_images=custom_image,
        agents_lost_after=3, agents_refresh_interval=1,
    )  # fmt: skip
    with api:
        assert f"image '{custom_image}' is not on node(s) node-b" in gateway.log()  # warned at start
        custom = [api.http.post("/start", json={"image": custom_image}).json()["kernel_id"] for _ in range(2)]
        assert nodes.kernels_on("node-a") == set(custom)  # not spread to node-b, which lacks the image
        full = api.http.post("/start", json={"image": custom_image})
        assert full.status_code == 429 and "max_kernels_per_node=2" in full.json()["detail"], full.text
        plain = api.start()
        assert nodes.kernels_on("node-b") == {plain}
        assert stdout_of(api.execute(custom[0], READ_MARKER)) == "custom-image\n"
        assert stdout_of(api.execute(plain, READ_MARKER)) == "-\n"
        made = {kernel_id: container_of(kernel_id) for kernel_id in (custom[0], plain)}
        assert made[custom[0]]["image"] == custom_image and made[plain]["image"] != custom_image
        assert made[custom[0]]["hardening"] == made[plain]["hardening"]  # whatever the image
        assert made[plain]["hardening"]["NetworkMode"] == "none"

        agent_a.kill()  # the only node with the image is gone: its kernels are lost, and not replaced on node-b

        def not_replaced() -> dict[str, Any] | None:
            described = api.http.get(f"/kernels/{custom[0]}").json()
            return described if "could not be restarted" in (described["last_death"] or "") else None

        described = wait_for("node-a's kernels lost and not replaced elsewhere", not_replaced, timeout=120)
        assert described["state"] == "dead" and "is on no ready node" in described["last_death"], described
        assert nodes.kernels_on("node-b") == {plain}
        refused_start = api.http.post("/start", json={"image": custom_image})
        assert refused_start.status_code == 503, refused_start.text  # as the local backend for a missing image
        assert f"Sandbox image '{custom_image}' is on no ready node" in refused_start.json()["detail"]
        assert "docs/swarm.md" in refused_start.json()["detail"]
        restarted = api.http.post(f"/kernels/{custom[0]}/restart")  # its image is kept: not moved to node-b
        assert restarted.status_code == 503 and "is on no ready node" in restarted.json()["detail"], restarted.text

        agent_a.start()  # node-a back: the kernel restarts there, with its image
        wait_for(
            "the kernel restarted on node-a",
            lambda: (r := api.http.post(f"/kernels/{custom[0]}/restart")).status_code == 200 and r,
            timeout=120,
            interval=1,
        )
        assert custom[0] in nodes.kernels_on("node-a")
        assert stdout_of(api.execute(custom[0], READ_MARKER)) == "custom-image\n"


def test_a_gateway_allowing_an_image_no_node_has_refuses_to_start(nodes, database, custom_image) -> None:
    nodes.start("node-a")  # its agent does not allow the image (its engine has it)
    settings = nodes.gateway_settings(database, allowed_images=custom_image)
    gateway = GatewayProcess(nodes.root / "gw", **settings)
    with pytest.raises(RuntimeError) as refused:
        gateway.start(timeout=90)
    assert f"Sandbox image '{custom_image}' is on no node" in str(refused.value)
    assert "JUPYCELL_ALLOWED_IMAGES" in str(refused.value)
