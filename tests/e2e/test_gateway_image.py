"""The gateway image itself, run as compose runs it (Docker socket and kernels dir mounted), driven over HTTP."""

from __future__ import annotations

import os

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # Ryuk's image cannot be pulled without a registry

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testcontainers.core.container import DockerContainer

from testing.harness import Api, remove_instance_containers, stdout_of, unique_instance, wait_for

GATEWAY_IMAGE = os.environ.get("JUPYCELL_GATEWAY_IMAGE", "jupycell-gateway:latest")


@pytest.fixture(scope="module")
def gateway_container(kernels_root: Path) -> Iterator[tuple[str, str]]:
    kernels_dir = kernels_root / "e2e"
    instance = unique_instance("e2e")
    container = (
        DockerContainer(GATEWAY_IMAGE)
        .with_env("JUPYCELL_INSTANCE", instance)
        .with_env("JUPYCELL_KERNELS_DIR", str(kernels_dir))
        .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
        .with_volume_mapping(str(kernels_dir), str(kernels_dir), "rw")  # same path: the engine resolves it
        .with_exposed_ports(8000)
    )
    container.start()
    try:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8000)}"

        def healthy() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{url}/health", timeout=5).status_code == 200
            return False

        try:
            wait_for("the gateway container's /health", healthy, timeout=120, interval=0.2)
        except AssertionError:
            stdout, stderr = container.get_logs()
            pytest.fail(f"gateway container did not come up:\n{stdout.decode()}\n{stderr.decode()}")
        yield url, instance
    finally:
        container.stop()
        remove_instance_containers(instance)


def test_seed_example_through_the_gateway_image(gateway_container: tuple[str, str]) -> None:
    url, instance = gateway_container
    api = Api(url)
    try:
        kernel = api.start()
        api.add(kernel, 1, "x = 10")
        api.add(kernel, 2, "y = x * 2")
        api.add(kernel, 3, "print(y)")
        assert api.cell(kernel, "run_all").json()["outputs"][-1]["outputs"][0]["text"] == "20\n"
        api.cell(kernel, "edit", 2, "y = x * 3")
        api.cell(kernel, "run_all")
        outputs = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 3}).json()
        assert outputs["outputs"][0]["text"] == "30\n"
        assert stdout_of(api.execute(kernel, "import os; print(os.getuid())")) == "1000\n"
        assert api.http.get("/docs").status_code == 200
    finally:
        api.close()


def test_mcp_client_through_the_gateway_image(gateway_container: tuple[str, str]) -> None:
    """Issue 12: the image serves /mcp on the same port, with its default allowed hosts (compose publishes the port
    on 127.0.0.1, so that is the Host clients send; here the container may be reached through another address)."""
    from tests.integration.test_mcp import run, started, text_of

    url, _ = gateway_container

    async def scenario(client):  # noqa: ANN001, ANN202
        kernel_id = await started(client)
        result = await client.call_tool("execute_code", {"kernel_id": kernel_id, "code": "print(6 * 7)"})
        await client.call_tool("shutdown_kernel", {"kernel_id": kernel_id})
        return result

    port = url.rsplit(":", 1)[1]
    assert text_of(run(url, scenario, key=None, host=f"127.0.0.1:{port}")) == "42\n"
