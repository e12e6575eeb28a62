"""The two-node docker-in-docker Swarm of ``make swarm-up``, as its users see it: two gateway replicas (one per
node, published on 127.0.0.1), an agent on each node, PostgreSQL. ``make test-swarm`` brings it up, runs these tests
and takes it down; without it (``JUPYCELL_SWARM_URLS`` unset) they are skipped.

The tests change the swarm (they kill a gateway task, force-update the agents, stop a node): they run in file order
in one process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.harness import Api, stdout_of, wait_for

PREFIX = "jupycell-swarm"
NODES = ("node1", "node2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("JUPYCELL_SWARM_URLS"):
        return
    skip = pytest.mark.skip(reason="needs the dind Swarm: make test-swarm")
    for item in items:
        if "swarm" in item.path.parts:
            item.add_marker(skip)


def in_node(node: str, *command: str, check: bool = True, timeout: float = 120) -> str:
    """Run ``command`` in a swarm node (its own engine: ``docker ...`` talks to the node's dockerd)."""
    done = subprocess.run(
        ["docker", "exec", f"{PREFIX}-{node}", *command], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{command} in {node} failed: {done.stderr.strip()}")
    return done.stdout.strip()


#: Kernel code printing its container's host name: the start of the container's id.
WHERE = "import socket; print(socket.gethostname())"


def node_running(container: str) -> str | None:
    """The node whose engine runs the container whose id starts with ``container``."""
    for node in NODES:
        if in_node(node, "docker", "ps", "-q", "--filter", f"id={container}"):
            return node
    return None


def node_of(api: Api, kernel_id: int) -> str | None:
    """Where the kernel runs now: its container's host name, looked up on every node."""
    return node_running(stdout_of(api.execute(kernel_id, WHERE)).strip())


def service_task_container(node: str, service: str) -> str | None:
    """The id of ``service``'s running task container on ``node``, or None."""
    found = in_node(node, "docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name=jupycell_{service}")
    return found.splitlines()[0] if found else None


@dataclass
class Swarm:
    """The deployed stack: one Api per gateway replica (``apis[0]`` on node1, ``apis[1]`` on node2)."""

    urls: list[str]
    key: str
    state: Path

    def api(self, index: int) -> Api:
        return Api(self.urls[index], key=self.key)

    def healthy(self, index: int) -> bool:
        try:
            with self.api(index) as api:
                return api.http.get("/health", timeout=2).status_code == 200
        except Exception:
            return False

    def wait_healthy(self, index: int, timeout: float = 180) -> None:
        wait_for(f"replica {index} healthy", lambda: self.healthy(index) or None, timeout=timeout, interval=0.5)


@pytest.fixture(scope="session")
def swarm() -> Iterator[Swarm]:
    state = Path(os.environ.get("JUPYCELL_SWARM_STATE", Path(__file__).parents[2] / ".swarm"))
    _key_id, secret, *_ = (state / "api-key").read_text().strip().split(":")  # id:secret:admin; bearer = secret
    deployed = Swarm(os.environ["JUPYCELL_SWARM_URLS"].split(","), secret, state)
    for index in range(len(deployed.urls)):
        deployed.wait_healthy(index)
    yield deployed
