"""Restarts take a warm-pool container for the existing kernel, against real containers: same kernel id and cells,
fresh memory, and a gateway killed with SIGKILL finds the kernel in that container again."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from testing.harness import Api, instance_containers, stdout_of, wait_for
from tests.conftest import GatewayFactory
from tests.integration.test_pool import pool_status, wait_full

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

WHERE = "import socket; print(socket.gethostname())"  # a container's host name is the start of its id


def container_of(api: Api, kernel_id: int) -> str:
    return stdout_of(api.execute(kernel_id, WHERE)).strip()


def ids(instance: str) -> set[str]:
    return {c["Id"] for c in instance_containers(instance)}


def cells_of(api: Api, kernel_id: int) -> list[dict[str, Any]]:
    response = api.http.get(f"/kernels/{kernel_id}/cells")
    assert response.status_code == 200, response.text
    return response.json()["cells"]


def test_restart_takes_a_pool_container_and_survives_a_gateway_kill(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory("restart-pool", pool_size=2, on_stop="keep", mem_limit_mb=512)
    with Api(gateway.url) as api:
        wait_full(api)
        kernel_id = api.start()
        assert api.execute(kernel_id, "x = 41")["status"] == "ok"
        before = container_of(api, kernel_id)
        before_status = wait_full(api)
        waiting = ids(gateway.instance) - {i for i in ids(gateway.instance) if i.startswith(before)}

        response = api.http.post(f"/kernels/{kernel_id}/restart")
        assert response.status_code == 200, response.text
        assert pool_status(api)["hits"] == before_status["hits"] + 1
        after = container_of(api, kernel_id)
        assert after != before and any(i.startswith(after) for i in waiting)  # one of the pool's containers
        assert stdout_of(api.execute(kernel_id, "print('x' in dir())")) == "False\n"  # fresh memory
        first = cells_of(api, kernel_id)[0]
        assert first["code"] == "x = 41"
        wait_for("the old container to go", lambda: not any(i.startswith(before) for i in ids(gateway.instance)))
        assert api.execute(kernel_id, "y = 5")["status"] == "ok"

    gateway.stop(sig=signal.SIGKILL)
    again = gateway_factory.again(gateway)
    with Api(again.url) as api:
        kernel = api.http.get(f"/kernels/{kernel_id}").json()
        assert kernel["state"] == "idle", kernel
        assert container_of(api, kernel_id) == after  # re-attached to the pool container it took
        assert stdout_of(api.execute(kernel_id, "print(y)")) == "5\n"  # with its memory
        wait_full(api)
        response = api.http.post(f"/kernels/{kernel_id}/restart")  # and it restarts again, from the pool
        assert response.status_code == 200, response.text
        assert container_of(api, kernel_id) not in (before, after)
        assert stdout_of(api.execute(kernel_id, "print('y' in dir())")) == "False\n"
        wait_for("the container it left to go", lambda: not any(i.startswith(after) for i in ids(again.instance)))
        assert cells_of(api, kernel_id)[0]["code"] == "x = 41"
