"""JupyCell on a two-node Swarm (``make test-swarm``): kernels on both nodes, any replica serving any kernel, and
the failures the issue names — a gateway task killed, the agents force-updated, a node stopped — each with the
answer a user should get. Runs in file order: the last tests break things for good."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from testing.harness import Api, stdout_of, wait_for
from tests.security.conftest import json_out
from tests.security.probes import PRIVILEGE_PROBE, assert_network_fails_fast, assert_no_privileges, network_probe
from tests.swarm.conftest import NODES, PREFIX, Swarm, in_node, node_of, service_task_container

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).parents[2]


def value_of(api: Api, kernel_id: int, expression: str) -> str:
    return stdout_of(api.execute(kernel_id, f"print({expression})")).strip()


def kernel_on(swarm: Swarm, node: str, attempts: int = 8) -> int:
    """A kernel (started through alternating replicas) whose container runs on ``node``; the others are shut down."""
    others: list[tuple[int, int]] = []
    try:
        for attempt in range(attempts):
            with swarm.api(attempt % 2) as api:
                kernel_id = api.start()
                if node_of(api, kernel_id) == node:
                    return kernel_id
            others.append((attempt % 2, kernel_id))
        raise AssertionError(f"no kernel placed on {node} in {attempts} starts")
    finally:
        for index, kernel_id in others:
            with swarm.api(index) as api:
                api.shutdown(kernel_id)


def test_kernels_land_on_both_nodes_and_either_replica_serves_them(swarm: Swarm) -> None:
    started: list[int] = []
    for index in (0, 1, 0, 1):
        with swarm.api(index) as api:
            started.append(api.start())
    with swarm.api(0) as first, swarm.api(1) as second:
        placed = {kernel_id: node_of(first, kernel_id) for kernel_id in started}
        assert set(placed.values()) == set(NODES), placed
        for kernel_id in started:
            assert first.add(kernel_id, 2, f"x = {kernel_id} % 1000\nx").status_code == 200
            ran = second.run(kernel_id, 2)
            assert ran.status_code == 200, ran.text
            outputs = first.http.get("/cell_outputs", params={"kernel_id": kernel_id, "cell_number": 2})
            assert outputs.status_code == 200, outputs.text
            assert str(kernel_id % 1000) in outputs.text
            assert second.shutdown(kernel_id).status_code == 200


def test_relays_answer_only_the_gateways_key(swarm: Swarm) -> None:
    """A container on the control network without the gateways' key (and a plaintext client) gets nothing."""
    done = subprocess.run([str(REPO / "scripts/swarm-check.sh")], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    for node in NODES:
        assert f"{node}: 1+1 = 2" in done.stdout, done.stdout
    for who in ("a key not on the allow-list", "a plaintext client"):  # control port and relays of every node
        assert done.stdout.count(f"{who} gets no answer\n") == len(NODES), done.stdout
        assert done.stdout.count(f"{who} gets no answer from the relays") == len(NODES), done.stdout


def test_a_kernel_on_the_second_node_is_sandboxed(swarm: Swarm) -> None:
    kernel_id = kernel_on(swarm, "node2")
    agents = in_node("node1", "docker", "service", "ps", "-q", "jupycell_agent")  # exists: the service is up
    assert agents
    targets = {
        "public": ("1.1.1.1", 443),
        "metadata": ("169.254.169.254", 80),
        "bridge": ("172.17.0.1", 8000),
        "host": ("127.0.0.1", 8000),
        "ipv6": ("2606:4700:4700::1111", 443),
    }
    for name, address in swarm_addresses().items():
        targets[name] = address
    with swarm.api(1) as api:
        assert_network_fails_fast(json_out(api.execute(kernel_id, network_probe(targets))))
        assert_no_privileges(json_out(api.execute(kernel_id, PRIVILEGE_PROBE)), gvisor=False)
        assert api.shutdown(kernel_id).status_code == 200


def swarm_addresses() -> dict[str, tuple[str, int]]:
    """Where the stack's services listen on the control network, and the nodes themselves."""
    targets: dict[str, tuple[str, int]] = {}
    for node in NODES:
        for service, port in (("gateway", 8000), ("agent", 7700), ("postgres", 5432)):
            container = service_task_container(node, service)
            if container is None:
                continue
            addresses = in_node(
                node, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container
            ).split()
            for n, address in enumerate(addresses):
                targets[f"{service}-{node}-{n}"] = (address, port)
        node_address = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", f"{PREFIX}-{node}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        targets[f"{node}-engine"] = (node_address, 2375)
    return targets


def test_agents_force_updated_kernels_keep_their_memory(swarm: Swarm) -> None:
    kernels = {node: kernel_on(swarm, node) for node in NODES}
    with swarm.api(0) as api:
        for node, kernel_id in kernels.items():
            api.execute(kernel_id, f"kept = '{node}'")
    in_node("node1", "docker", "service", "update", "--force", "--detach=false", "jupycell_agent", timeout=300)
    for index in (0, 1):
        with swarm.api(index) as api:
            for node, kernel_id in kernels.items():
                assert (
                    wait_for(
                        f"kernel on {node} answering through replica {index}",
                        lambda kernel_id=kernel_id: _value_or_none(api, kernel_id, "kept"),
                        timeout=120,
                        interval=1,
                    )
                    == node
                )
    with swarm.api(0) as api:
        for kernel_id in kernels.values():
            api.shutdown(kernel_id)
    began = time.monotonic()
    for index in (0, 1):  # each replica follows the agents to their new addresses: its new kernels answer
        with swarm.api(index) as api:
            wait_for(f"a new kernel answering through replica {index}", lambda: _fresh_kernel_runs(api), timeout=60)
    print(f"\nnew kernels answer through both replicas {time.monotonic() - began:.1f} s after the update")


def _fresh_kernel_runs(api: Api) -> bool:
    """Whether a kernel started now runs its first cell (it is shut down either way)."""
    kernel_id = api.start()
    try:
        return api.execute(kernel_id, "1 + 1")["status"] == "ok"
    finally:
        api.shutdown(kernel_id)


def _value_or_none(api: Api, kernel_id: int, expression: str) -> str | None:
    """The value, or None while the kernel is not usable yet (an error status, a refused or cut connection)."""
    try:
        return value_of(api, kernel_id, expression)
    except (AssertionError, KeyError, httpx.HTTPError):
        return None


def test_a_killed_gateway_task_has_its_kernels_adopted_with_their_memory(swarm: Swarm) -> None:
    with swarm.api(1) as api:
        kernel_id = api.start()  # owned by the replica on node2, which took the request
        assert api.execute(kernel_id, "kept = 6 * 7")["status"] == "ok"
    task = service_task_container("node2", "gateway")
    assert task is not None
    in_node("node2", "docker", "kill", task)
    began = time.monotonic()
    with swarm.api(0) as api:
        assert (
            wait_for(
                "the kernel adopted by the replica on node1",
                lambda: _value_or_none(api, kernel_id, "kept"),
                timeout=120,
                interval=0.5,
            )
            == "42"
        )
        print(f"\nkernel usable through the other replica {time.monotonic() - began:.1f} s after the kill")
        assert api.shutdown(kernel_id).status_code == 200
    swarm.wait_healthy(1)  # Swarm restarts the task


def test_a_stopped_node_has_its_kernels_reported_lost_and_restartable_elsewhere(swarm: Swarm) -> None:
    kernel_id = kernel_on(swarm, "node2")
    with swarm.api(0) as api:
        assert api.add(kernel_id, 2, "y = 21 * 2\ny").status_code == 200
        assert api.run(kernel_id, 2).status_code == 200
        subprocess.run(["docker", "stop", "-t", "0", f"{PREFIX}-node2"], check=True, capture_output=True)

        def reported_lost() -> dict[str, object] | None:
            # Dead with the cause; the core may already be placing a fresh container on node1 (state starting/idle).
            kernel = api.http.get(f"/kernels/{kernel_id}").json()
            return kernel if "lost" in str(kernel.get("last_death")) else None

        kernel = wait_for("the kernel reported lost", reported_lost, timeout=180, interval=1)
        assert kernel["last_death"] == "node node2 lost", kernel
        cells = api.http.get(f"/kernels/{kernel_id}/cells").json()["cells"]
        assert [c["code"] for c in cells][-1] == "y = 21 * 2\ny"
        restarted = api.http.post(f"/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200, restarted.text
        assert node_of(api, kernel_id) == "node1"
        ran = api.run(kernel_id, 2)
        assert ran.status_code == 200 and "42" in ran.text, ran.text
        api.shutdown(kernel_id)
