"""Kernel lifecycle: shutdown, restart, and a gateway that cleans up after itself."""

from __future__ import annotations

import os

import docker

from testing.harness import Api, GatewayProcess, stdout_of


def _containers(instance: str) -> list:
    client = docker.from_env()
    try:
        return client.containers.list(all=True, filters={"label": f"jupycell.instance={instance}"})
    finally:
        client.close()


def test_shutdown_removes_the_container(api: Api, gateway: GatewayProcess) -> None:
    kernel_id = api.start()
    name = f"jupycell-{gateway.instance}-{kernel_id}"
    assert name in [c.name for c in _containers(gateway.instance)]
    assert api.shutdown(kernel_id).status_code == 200
    assert name not in [c.name for c in _containers(gateway.instance)]
    assert api.shutdown(kernel_id).status_code == 404
    assert api.http.get(f"/kernels/{kernel_id}").status_code == 404


def test_restart_keeps_cells_and_clears_memory(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "x = 10")
    api.add(kernel, 2, "print(x)")
    api.cell(kernel, "run_all")
    assert api.http.post(f"/kernels/{kernel}/restart").status_code == 200
    cells = api.http.get(f"/kernels/{kernel}/cells").json()["cells"]
    assert [(c["number"], c["status"], c["execution_count"]) for c in cells] == [(1, None, None), (2, None, None)]
    assert api.run(kernel, 2).json()["outputs"][-1]["ename"] == "NameError"
    assert stdout_of(api.cell(kernel, "run_all").json()["outputs"][-1]) == "10\n"


def test_kernel_listing(api: Api, kernel: int) -> None:
    listing = api.http.get("/kernels").json()["kernels"]
    mine = [k for k in listing if k["kernel_id"] == kernel]
    assert len(mine) == 1 and mine[0]["state"] == "idle"
    assert mine[0]["limits"]["mem_limit_mb"] == 512 and mine[0]["limits"]["runtime"] == os.environ.get(
        "JUPYCELL_RUNTIME", "runc"
    )


def test_health(api: Api) -> None:
    assert api.http.get("/health").json()["docker"] == "ok"
