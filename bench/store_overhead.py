"""What the durable store costs on the execute path: HTTP run of ``1+1`` against the raw jupyter_client round trip.

Starts a gateway from ``--repo`` (default: this checkout) with its own instance and data dir, starts one kernel,
then alternates blocks of raw ``execute("1+1")`` (jupyter_client on the same kernel's sockets) and HTTP
``POST /cell`` runs of a cell holding ``1+1``, and prints p50s and their ratio. Run it on a checkout before and
after a change to compare::

    python bench/store_overhead.py                      # this checkout, SQLite
    python bench/store_overhead.py --repo /work/main    # another checkout (e.g. without the store)
    JUPYCELL_DATABASE_URL=postgresql://... python bench/store_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from jupyter_client.asynchronous import AsyncKernelClient

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from testing.harness import GatewayProcess, remove_instance_containers  # noqa: E402


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def raw_round_trips(connection: dict, n: int) -> list[float]:
    client = AsyncKernelClient()
    client.load_connection_info(connection)
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
    await client.wait_for_ready(timeout=30)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.execute_interactive("1+1", output_hook=lambda msg: None, timeout=30)
        times.append(time.perf_counter() - t0)
    client.stop_channels()
    return times


def http_round_trips(http: httpx.Client, kernel_id: int, n: int) -> list[float]:
    body = {"kernel_id": kernel_id, "action": "run", "cell_number": 1}
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = http.post("/cell", json=body)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=HERE, help="checkout whose gateway to run")
    parser.add_argument("--runs", type=int, default=300, help="runs per block")
    parser.add_argument("--blocks", type=int, default=5, help="alternating raw/HTTP blocks")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="jcb-"))
    gateway = GatewayProcess(root / "k")
    gateway.env["PYTHONPATH"] = str(args.repo)
    import testing.harness as harness

    harness.ROOT = args.repo  # run uvicorn from that checkout
    gateway.start()
    http = httpx.Client(base_url=gateway.url, timeout=60)
    try:
        kernel_id = http.post("/start").json()["kernel_id"]
        http.post("/cell", json={"kernel_id": kernel_id, "action": "add", "cell_number": 1, "code": "1+1"})
        socket_dir = root / "k" / gateway.instance / str(kernel_id)
        info = json.loads((socket_dir / "kernel.json").read_text())
        info["ip"] = str(socket_dir / "k")
        raw, via_http = [], []
        http_round_trips(http, kernel_id, 50)  # warm-up
        for _ in range(args.blocks):
            raw += asyncio.run(raw_round_trips(info, args.runs))
            via_http += http_round_trips(http, kernel_id, args.runs)
        print(f"gateway code: {args.repo}")
        print(f"raw jupyter_client execute 1+1   p50 {p50(raw):6.2f} ms  (n={len(raw)})")
        print(f"HTTP POST /cell run of 1+1       p50 {p50(via_http):6.2f} ms  (n={len(via_http)})")
        print(f"ratio HTTP / raw                     {p50(via_http) / p50(raw):6.2f}x")
    finally:
        http.close()
        gateway.stop()
        remove_instance_containers(gateway.instance)


if __name__ == "__main__":
    main()
