"""Idle culling and maximum lifetime, with tiny limits on a gateway of their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

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


def wait_until_removed(instance: str, timeout: float = 60) -> bool:
    """True once no container of the gateway is left (removal finishes just after the kernel is gone)."""
    return wait_for("the containers' removal", lambda: not instance_containers(instance), timeout)


def test_idle_kernel_is_shut_down_but_not_while_it_runs(gateway_factory: GatewayFactory) -> None:
    with gateway_with(gateway_factory, "idle", idle_timeout=4) as (api, gateway):
        kernel = api.start()
        api.add(kernel, 1, "import time; time.sleep(6); print('survived')")
        result = api.run(kernel, 1).json()  # runs longer than the idle timeout
        assert result["status"] == "ok" and result["outputs"][0]["text"] == "survived\n"
        assert "idle for more than 4 s" in wait_for_404(api, kernel)
        assert wait_until_removed(gateway.instance)


def test_busy_kernel_is_shut_down_at_its_maximum_lifetime(gateway_factory: GatewayFactory) -> None:
    with gateway_with(gateway_factory, "life", max_lifetime=20) as (api, gateway):
        kernel = api.start()
        api.add(kernel, 1, "import time; time.sleep(120)")
        response = api.run(kernel, 1)  # never idle: shut down under the run (20 s leaves room for a slow start)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["status"] == "died" and "maximum lifetime of 20 s" in result["detail"], result
        assert "maximum lifetime of 20 s" in wait_for_404(api, kernel)
        assert wait_until_removed(gateway.instance)
