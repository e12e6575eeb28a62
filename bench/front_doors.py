"""``1+1`` through each front door of one gateway, interleaved, so their ratios come from the same moments:

- ``POST /cell`` action ``run`` of an existing cell (the seed API: the baseline);
- ``POST /kernels/{id}/execute`` (appends a cell and runs it: one call);
- the Python SDK's ``kernel.execute`` (the same request, through the client library);
- the MCP tool ``execute_code`` with the official ``mcp`` client (one JSON-RPC call over streamable HTTP).

Starts its own gateway process. Usage: ``python bench/front_doors.py [runs=100]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import mcp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

import jupycell  # noqa: E402

from testing.harness import GatewayProcess, remove_instance_containers  # noqa: E402


async def measure(url: str, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "POST /cell run": [],
        "POST /execute": [],
        "SDK execute": [],
        "MCP execute_code": [],
    }
    async with httpx.AsyncClient(base_url=url, timeout=120) as http, mcp.Client(f"{url}/mcp") as client:
        async with jupycell.AsyncClient(url) as sdk:
            kernel = await sdk.start_kernel()
            await kernel.add_cell(0, "1+1")

            async def seed() -> None:
                body = {"kernel_id": kernel.id, "action": "run", "cell_number": 0}
                assert (await http.post("/cell", json=body)).json()["status"] == "ok"

            async def execute() -> None:
                body = {"code": "1+1"}
                assert (await http.post(f"/kernels/{kernel.id}/execute", json=body)).json()["status"] == "ok"

            async def via_sdk() -> None:
                assert (await kernel.execute("1+1")).ok

            async def via_mcp() -> None:
                result = await client.call_tool("execute_code", {"kernel_id": kernel.id, "code": "1+1"})
                assert not result.is_error

            doors: dict[str, Callable[[], Awaitable[None]]] = {
                "POST /cell run": seed,
                "POST /execute": execute,
                "SDK execute": via_sdk,
                "MCP execute_code": via_mcp,
            }
            for i in range(runs + 5):
                for name, door in doors.items():
                    t0 = time.perf_counter()
                    await door()
                    if i >= 5:  # warm-up
                        times[name].append(time.perf_counter() - t0)
            await kernel.shutdown()
    return times


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory(prefix="jc-b-") as root:
        gateway = GatewayProcess(Path(root) / "k", audit_log="off").start()
        try:
            times = asyncio.run(measure(gateway.url, runs))
        finally:
            gateway.stop()
            remove_instance_containers(gateway.instance)
    base = statistics.median(times["POST /cell run"])
    print(f"1+1 through each front door, {runs} runs each, interleaved (p50, p90, ratio of p50 to POST /cell run)")
    for name, values in times.items():
        p50, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
        print(f"  {name:<18} p50 {p50 * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   x{p50 / base:.2f}")


if __name__ == "__main__":
    main()
