"""One queue per kernel: seed API runs and executions sent over the Jupyter websocket never overlap, a seed API
deadline never interrupts a websocket's code, and culling does not take a kernel running websocket work for idle."""

from __future__ import annotations

import threading
import time
from typing import Any

import docker

from testing.harness import Api, GatewayProcess, stdout_of, wait_for
from testing.jupyter import KernelWebsocket, ws_url
from tests.conftest import GatewayFactory

# The websocket's cell sets a variable, then holds the kernel until the test interrupts it.
HOLDING = "shared = 'from the websocket'\nimport time\nwhile True: time.sleep(0.05)"


def _channels(gateway: GatewayProcess, kernel_id: str) -> KernelWebsocket:
    return KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{kernel_id}/channels")


def test_a_seed_api_run_waits_for_a_websocket_execution(api: Api, gateway: GatewayProcess) -> None:
    model = api.http.post("/api/kernels").json()
    kid = model["kernel_id"]
    try:
        with _channels(gateway, model["id"]) as ws:
            msg_id = ws.send("shell", "execute_request", {"code": HOLDING})
            ws.until(lambda ch, m: m["msg_type"] == "execute_input")
            assert api.add(kid, 1, "print(shared)").status_code == 200
            refused = api.run(kid, 1, wait=False)
            assert refused.status_code == 409 and "busy" in refused.json()["detail"]
            # queued behind the websocket's execution: its 5 s deadline only starts once that one is done
            queued: dict[str, Any] = {}
            runner = threading.Thread(target=lambda: queued.update(api.run(kid, 1, timeout=5).json()))
            runner.start()
            time.sleep(0.5)  # not a synchronisation: the run must still be waiting whatever the delay
            assert runner.is_alive() and api.http.get(f"/kernels/{kid}").json()["state"] == "busy"
            assert api.http.post(f"/kernels/{kid}/interrupt").status_code == 200
            assert ws.collect(msg_id, timeout=120).error == "KeyboardInterrupt"
            runner.join(300)
            assert queued["status"] == "ok", queued
            assert stdout_of(queued) == "from the websocket\n"
    finally:
        api.http.delete(f"/api/kernels/{model['id']}")


def test_culling_does_not_take_a_websocket_execution_for_idle(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory("queue", mem_limit_mb=512, idle_timeout=3, cull_interval=0.2)
    with Api(gateway.url) as api:
        model = api.http.post("/api/kernels").json()
        with _channels(gateway, model["id"]) as ws:
            assert ws.execute("1").reply["status"] == "ok"  # the kernel is active now, and ...
            # ... at once runs silent websocket work longer than the idle timeout
            execution = ws.execute("import time\ntime.sleep(8)\nprint('survived')", timeout=120)
            assert execution.stdout == "survived\n"
        wait_for(
            "the idle kernel to be culled",
            lambda: api.http.get(f"/kernels/{model['kernel_id']}").status_code == 404,
            timeout=120,
        )


def test_the_container_carries_both_ids(api: Api, gateway: GatewayProcess) -> None:
    model = api.http.post("/api/kernels").json()
    try:
        client = docker.from_env()
        try:
            (container,) = client.containers.list(filters={"label": f"jupycell.jupyter_id={model['id']}"})
            assert container.labels["jupycell.kernel_id"] == str(model["kernel_id"])
            assert container.labels["jupycell.instance"] == gateway.instance
        finally:
            client.close()
    finally:
        api.http.delete(f"/api/kernels/{model['id']}")
