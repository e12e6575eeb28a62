"""Packages on demand on the agents backend, where the local backend's own tests (test_packages.py, which also runs
with JUPYCELL_TEST_BACKEND=agents) do not reach: two gateway replicas on one PostgreSQL and one node agent with the
wheel cache; a restart from the warm pool (the new container's sandbox id is a pool id, its wheel directory a new
one on the node), the owner replica killed and its kernel adopted by the other, a restart there (what the kernel had
is read from the store: the adopting replica never saw it installed), and a shut down kernel's wheel directories
removed on the node."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.harness import agent_keys, postgres_database, skip_without_postgres, stdout_of, wait_for
from tests.conftest import GatewayFactory
from tests.integration.test_packages import IMAGE
from tests.integration.test_pool import wait_full
from tests.integration.test_replicas import Replicas
from tests.support_agent import AgentProcess

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.environ.get("JUPYCELL_RUNTIME", "runc") != "runc", reason="backend logic: the runc run"),
]

CHECK = "import tabulate\nprint(tabulate.__name__)"


@pytest.fixture
def replicas(gateway_factory: GatewayFactory) -> Iterator[tuple[Replicas, AgentProcess]]:
    skip_without_postgres()
    with postgres_database() as url:
        group = Replicas(gateway_factory, url)
        root = gateway_factory.kernels_root
        root.mkdir(parents=True, exist_ok=True)
        agent = AgentProcess(
            root, agent_keys(), instance=group.instance, kernels_dir=root / "replicas", sandbox_image=IMAGE,
            mem_limit_mb=512,
            packages_dir=root / f"packages-{group.instance}",
        )  # fmt: skip
        agent.start()
        try:
            yield group, agent
        finally:
            group.close()
            gateway_factory.close()  # before the database is dropped
            agent.stop()


def wheel_dirs(agent: AgentProcess) -> set[str]:
    """The node's kernel wheel directories holding a tabulate wheel (by sandbox id)."""
    kernels = Path(agent.env["JUPYCELL_PACKAGES_DIR"]) / "kernels" / agent.instance
    return {path.parent.name for path in kernels.glob("*/tabulate-*.whl")}


def test_restart_from_the_pool_adoption_and_shut_down_on_the_agents_backend(
    replicas: tuple[Replicas, AgentProcess],
) -> None:
    group, agent = replicas
    keys = agent_keys()
    backend = {
        "backend": "agents",
        "agents": agent.address,
        "gateway_curve_secret_file": keys.gateway_secret_file,
        "agent_curve_public_file": keys.agent_public_file,
        "sandbox_image": IMAGE,
        "pool_size": 1,
        "on_stop": "keep",
    }
    a = group.start("a", **backend)
    b = group.start("b", **backend)
    wait_full(a)
    kernel = a.start()
    assert a.execute(kernel, "%pip install tabulate\n" + CHECK)["status"] == "ok"
    assert wheel_dirs(agent) == {str(kernel)}
    assert "on node" in group.gateways["a"].log()  # fetched by the node's agent

    wait_full(a)
    assert a.http.post(f"/kernels/{kernel}/restart").status_code == 200
    (pooled,) = wheel_dirs(agent) - {str(kernel)}  # a pool container's sandbox id: its own directory, relinked
    assert stdout_of(a.execute(kernel, "print('marker' in globals())\n" + CHECK)) == "False\ntabulate\n"
    wait_for("the old container's wheel directory removed", lambda: wheel_dirs(agent) == {pooled} or None)
    assert a.execute(kernel, "marker = 1")["status"] == "ok"

    group.gateways["a"].stop(signal.SIGKILL)
    wait_for("b to adopt the kernel", lambda: group.owner(kernel) == "b", timeout=120)
    assert stdout_of(b.execute(kernel, "print(marker)\n" + CHECK)) == "1\ntabulate\n"  # adopted: same memory
    assert b.http.get(f"/kernels/{kernel}/packages").json()["requirements"] == ["tabulate"]

    assert b.http.post(f"/kernels/{kernel}/restart").status_code == 200  # b never saw it installed: the store did
    assert stdout_of(b.execute(kernel, "print('marker' in globals())\n" + CHECK)) == "False\ntabulate\n"

    b.shutdown(kernel)
    wait_for("the kernel's wheel directories removed on the node", lambda: wheel_dirs(agent) == set() or None)
