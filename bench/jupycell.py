"""JupyCell gateway processes for the benchmark, and the async HTTP work done against them."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import docker

from bench.client import Connection
from bench.procs import container_memory_mb, rss_mb
from testing.harness import GatewayProcess, remove_instance_containers


class Gateway:
    """``uvicorn --factory gateway.main:create_app`` on loopback (the image's command), own instance label."""

    def __init__(self, root: Path, name: str, **settings: Any) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.process = GatewayProcess(root / "k", instance=f"bench-{name}-{secrets.token_hex(3)}", **settings)
        self.process.start()
        self.port = self.process.port
        self.instance = self.process.instance

    async def connection(self) -> Connection:
        return Connection(self.port)

    def rss_mb(self) -> float:
        assert self.process.process is not None
        return rss_mb(self.process.process.pid)

    def container_memory_mb(self) -> list[float]:
        client = docker.APIClient()
        try:
            found = client.containers(filters={"label": f"jupycell.instance={self.instance}"})
        finally:
            client.close()
        return [m for c in found if (m := container_memory_mb(c["Id"])) is not None]

    def close(self) -> None:
        self.process.stop()
        remove_instance_containers(self.instance)


async def wait_pool_full(conn: Connection, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, status = await conn.request("GET", "/pool")
        if status["ready"] >= status["size"]:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the warm pool did not fill")


async def start(conn: Connection) -> tuple[int, float]:
    begin = time.perf_counter()
    status, body = await conn.request("POST", "/start")
    elapsed = time.perf_counter() - begin
    if status != 200:
        raise RuntimeError(f"POST /start: {status} {body}")
    return body["kernel_id"], elapsed


async def add_cell(conn: Connection, kernel_id: int, number: int, code: str) -> None:
    status, body = await conn.request(
        "POST", "/cell", {"kernel_id": kernel_id, "action": "add", "cell_number": number, "code": code}
    )
    if status != 200:
        raise RuntimeError(f"add cell: {status} {body}")


async def run_cell(conn: Connection, kernel_id: int, number: int) -> dict[str, Any]:
    status, body = await conn.request("POST", "/cell", {"kernel_id": kernel_id, "action": "run", "cell_number": number})
    if status != 200:
        raise RuntimeError(f"run cell: {status} {body}")
    return body


async def shutdown(conn: Connection, kernel_id: int) -> None:
    await conn.request("DELETE", f"/kernels/{kernel_id}")
