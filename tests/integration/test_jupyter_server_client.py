"""An unmodified `jupyter server --gateway-url=<JupyCell>` uses JupyCell's sandboxed kernels.

The test talks to jupyter_server only (its REST API and its kernel websocket), as JupyterLab would, and then
checks on the Docker engine that the kernel runs in a JupyCell sandbox container. The gateway requires an API key,
which jupyter_server sends as `Authorization: token <key>` (JUPYTER_GATEWAY_AUTH_TOKEN).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from testing.harness import Api, GatewayProcess, client_for, stdout_of
from testing.jupyter import JupyterServer, KernelWebsocket, ws_url
from tests.conftest import TEST_SETTINGS

KEY = "jupyter-server-integration-key-0001"


@pytest.fixture(scope="module")
def gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    """A gateway of this module's own, with an API key."""
    with GatewayProcess(kernels_root / "js", keys={"lab": KEY}, **TEST_SETTINGS) as process:
        yield process


@pytest.fixture(scope="module")
def api(gateway: GatewayProcess) -> Iterator[Api]:
    with client_for(gateway, "lab") as client:
        yield client


@pytest.fixture(scope="module")
def jupyter(gateway: GatewayProcess) -> Iterator[JupyterServer]:
    # jupyter_server forwards KERNEL_* variables and those named in JUPYTER_GATEWAY_ALLOWED_ENVS from its own env
    env = {
        "JUPYTER_GATEWAY_AUTH_TOKEN": KEY,
        "JUPYTER_GATEWAY_ALLOWED_ENVS": "JC_GREETING",
        "JC_GREETING": "from jupyter server",
    }
    server = JupyterServer(gateway.url, extra_env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def jhttp(jupyter: JupyterServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jupyter.url, headers=jupyter.headers, timeout=180) as client:
        yield client


def _container(instance: str, kernel_id: int) -> dict:
    client = docker.from_env()
    try:
        labels = [f"jupycell.instance={instance}", f"jupycell.kernel_id={kernel_id}", "jupycell.managed=true"]
        (container,) = client.containers.list(filters={"label": labels})
        return container.attrs
    finally:
        client.close()


def test_jupyter_server_runs_code_on_a_jupycell_sandbox(
    jupyter: JupyterServer, jhttp: httpx.Client, api: Api, gateway: GatewayProcess
) -> None:
    assert httpx.get(f"{gateway.url}/api/kernels").status_code == 401  # the gateway wants the key
    specs = jhttp.get("/api/kernelspecs").json()
    assert "JupyCell sandbox" in specs["kernelspecs"]["python3"]["spec"]["display_name"]
    logo = jhttp.get(specs["kernelspecs"]["python3"]["resources"]["logo-64x64"])
    assert logo.status_code == 200 and logo.content.startswith(b"\x89PNG")

    created = jhttp.post("/api/kernels", json={"name": "python3"})
    assert created.status_code == 201, created.text
    kid = created.json()["id"]
    try:
        # the same kernel, seen from JupyCell: a container of this gateway, labelled, hardened
        seed_id = api.http.get(f"/api/kernels/{kid}").json()["kernel_id"]
        attrs = _container(gateway.instance, seed_id)
        assert attrs["State"]["Running"]
        assert attrs["HostConfig"]["NetworkMode"] == "none" and attrs["HostConfig"]["ReadonlyRootfs"]
        assert attrs["Config"]["Labels"]["jupycell.kernel_id"] == str(seed_id)

        channels = f"{ws_url(jupyter.url)}/api/kernels/{kid}/channels?session_id=test-session"
        with KernelWebsocket(channels, headers=jupyter.headers) as ws:
            result = ws.execute("import os, socket\nprint(os.environ['JC_GREETING'], socket.gethostname() != '')")
            assert result.reply["status"] == "ok", result.iopub
            assert result.stdout == "from jupyter server True\n"

            # seed API and websocket share the kernel's state
            assert ws.execute("counter = 1").reply["status"] == "ok"
            assert stdout_of(api.execute(seed_id, "counter += 1; print(counter)")) == "2\n"
            assert ws.execute("print(counter)").stdout == "2\n"

            # interrupt through jupyter_server's REST API
            msg_id = ws.send("shell", "execute_request", {"code": "import time\nwhile True: time.sleep(0.05)"})
            ws.until(lambda ch, m: m["msg_type"] == "execute_input")
            assert jhttp.post(f"/api/kernels/{kid}/interrupt").status_code == 204
            assert ws.collect(msg_id, timeout=60).error == "KeyboardInterrupt"
            assert ws.execute("print(counter)").stdout == "2\n"

            # restart through jupyter_server's REST API: a fresh container, same kernel id
            old_container = attrs["Id"]
            restarted = jhttp.post(f"/api/kernels/{kid}/restart")
            assert restarted.status_code == 200 and restarted.json()["id"] == kid
        new_attrs = _container(gateway.instance, seed_id)
        assert new_attrs["Id"] != old_container and new_attrs["State"]["Running"]

        # like JupyterLab after a restart: a new websocket; the kernel is fresh
        with KernelWebsocket(channels, headers=jupyter.headers) as ws:
            ws.wait_ready()
            assert ws.execute("print(counter)").error == "NameError"
            assert ws.execute("print('still works')").stdout == "still works\n"

        listed = jhttp.get("/api/kernels").json()
        assert kid in [k["id"] for k in listed]
    finally:
        deleted = jhttp.delete(f"/api/kernels/{kid}")
    assert deleted.status_code == 204
    assert api.http.get(f"/api/kernels/{kid}").status_code == 404
    client = docker.from_env()
    try:
        assert not client.containers.list(all=True, sparse=True, filters={"label": f"jupycell.kernel_id={seed_id}"})
    finally:
        client.close()
