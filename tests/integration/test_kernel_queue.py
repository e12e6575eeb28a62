"""One queue per kernel: seed API runs and executions sent over the Jupyter websocket never overlap, a seed API
deadline never interrupts a websocket's code, and culling does not take a kernel running websocket work for idle."""

from __future__ import annotations

import time
from pathlib import Path

import docker

from testing.harness import Api, GatewayProcess, remove_instance_containers, stdout_of
from testing.jupyter import KernelWebsocket, ws_url


def _channels(gateway: GatewayProcess, kernel_id: str) -> KernelWebsocket:
    return KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{kernel_id}/channels")


def test_a_seed_api_run_waits_for_a_websocket_execution(api: Api, gateway: GatewayProcess) -> None:
    model = api.http.post("/api/kernels").json()
    try:
        with _channels(gateway, model["id"]) as ws:
            msg_id = ws.send(
                "shell", "execute_request", {"code": "import time\ntime.sleep(6)\nshared = 'from the websocket'"}
            )
            ws.until(lambda ch, m: m["msg_type"] == "execute_input")
            # queued behind the websocket's execution; its 2 s deadline only starts once that one is done
            assert api.http.get(f"/kernels/{model['kernel_id']}").json()["state"] == "busy"
            assert api.add(model["kernel_id"], 1, "print(shared)").status_code == 200
            refused = api.run(model["kernel_id"], 1, wait=False)
            assert refused.status_code == 409 and "busy" in refused.json()["detail"]
            result = api.run(model["kernel_id"], 1, timeout=2).json()
            assert result["status"] == "ok", result
            assert stdout_of(result) == "from the websocket\n"
            assert ws.collect(msg_id, timeout=60).reply["status"] == "ok"
    finally:
        api.http.delete(f"/api/kernels/{model['id']}")


def test_culling_does_not_take_a_websocket_execution_for_idle(kernels_root: Path) -> None:
    gateway = GatewayProcess(kernels_root / "queue", mem_limit_mb=512, idle_timeout=1, cull_interval=0.2).start()
    api = Api(gateway.url)
    try:
        model = api.http.post("/api/kernels").json()
        with _channels(gateway, model["id"]) as ws:
            execution = ws.execute("import time\ntime.sleep(4)\nprint('survived')", timeout=60)
            assert execution.stdout == "survived\n"  # 4 s of silence > idle_timeout: still alive
        deadline = time.monotonic() + 60
        while api.http.get(f"/kernels/{model['kernel_id']}").status_code == 200:  # idle afterwards: culled
            assert time.monotonic() < deadline, "an idle kernel was never culled"
            time.sleep(0.2)
    finally:
        api.close()
        gateway.stop()
        remove_instance_containers(gateway.instance)


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
