"""Idle culling and maximum lifetime, with tiny limits on a gateway of their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from testing.harness import Api, GatewayProcess, instance_containers, wait_for
from tests.conftest import GatewayFactory


@contextmanager
def gateway_with(gateway_factory: GatewayFactory, name: str, **limits: float) -> Iterator[tuple[Api, GatewayProcess]]:
    gateway = gateway_factory(name, mem_limit_mb=512, cull_interval=0.2, **limits)
    with Api(gateway.url) as api:
        yield api, gateway


def wait_for_404(api: Api, kernel: int, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while (response := api.http.get(f"/kernels/{kernel}")).status_code == 200:
        assert time.monotonic() < deadline, "kernel was never shut down"
        time.sleep(0.2)
    assert response.status_code == 404
    return response.json()["detail"]


def wait_until_removed(instance: str, kernel: int, timeout: float = 60) -> bool:
    """True once the kernel's container is gone (removal finishes just after the kernel is)."""

    def removed() -> bool:
        return all(c["Labels"].get("jupycell.kernel_id") != str(kernel) for c in instance_containers(instance))

    return wait_for("the container's removal", removed, timeout)


@pytest.mark.slow
def test_idle_kernel_is_shut_down_but_not_while_it_runs(gateway_factory: GatewayFactory) -> None:
    # 8 s idle: room for the two requests between the kernel's start and its run on a loaded machine
    with gateway_with(gateway_factory, "idle", idle_timeout=8) as (api, gateway):
        kernel = api.start()
        api.add(kernel, 1, "import time; time.sleep(10); print('survived')")
        result = api.run(kernel, 1).json()  # runs longer than the idle timeout
        assert result["status"] == "ok" and result["outputs"][0]["text"] == "survived\n"
        assert "idle for more than 8 s" in wait_for_404(api, kernel)
        assert wait_until_removed(gateway.instance, kernel)


@pytest.mark.slow
def test_busy_kernel_is_shut_down_at_its_maximum_lifetime(gateway_factory: GatewayFactory) -> None:
    # The lifetime counts from the start request; a cold start on a loaded machine can take 20 s, so the kernel
    # comes from the warm pool (ready at once) and only two requests separate its start from its run.
    with gateway_with(gateway_factory, "life", max_lifetime=20, pool_size=1) as (api, gateway):
        wait_for("a ready pooled kernel", lambda: api.http.get("/pool").json()["ready"] >= 1, timeout=180)
        kernel = api.start()
        api.add(kernel, 1, "import time; time.sleep(120)")
        response = api.run(kernel, 1)  # never idle: shut down under the run
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["status"] == "died" and "maximum lifetime of 20 s" in result["detail"], result
        assert "maximum lifetime of 20 s" in wait_for_404(api, kernel)
        assert wait_until_removed(gateway.instance, kernel)
