"""A change's effect on throughput under load, measured in one run: gateways of several checkouts and raw
jupyter_client, N clients each on its own kernel, in alternating slices.

``python -m bench.compare_load CHECKOUT [CHECKOUT ...] [--clients N] [--seconds S] [--slices K] [--image IMAGE]``
starts one gateway per checkout (pool off) with N kernels, each with the load phase's cell, and N raw kernel
containers; then K times, in a random order: N clients on each gateway for S/K seconds, and N raw jupyter_client
clients for as long (``bench.load``, as ``make bench`` does). Every side sees the same minutes of a shared machine.
Prints each side's cells/s (and against raw), errors, latency p50/p99, and each gateway process's CPU time per
request (from ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from pathlib import Path

import testing.harness as harness
from bench import jupycell as jc
from bench.client import Connection
from bench.compare_checkouts import cpu_seconds
from bench.load import LoadResult, jupycell_load, raw_kernels, raw_load
from bench.raw_floor import RawFloor
from bench.run import LOAD_CELL
from bench.stats import p50, percentile

RAW = "raw jupyter_client"


async def compare(checkouts: list[Path], clients: int, seconds: float, slices: int, image: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="jcl-"))
    gateways: list[jc.Gateway] = []
    raw = RawFloor(image)
    try:
        for number, checkout in enumerate(checkouts):
            harness.ROOT = checkout  # the process runs uvicorn from that checkout
            gateways.append(jc.Gateway(root / f"g{number}", f"cml{number}", pool_size=0, sandbox_image=image))
        sides: dict[str, list[tuple[Connection, int]]] = {}
        for checkout, gateway in zip(checkouts, gateways, strict=True):
            conns = [await gateway.connection() for _ in range(clients)]
            ids: list[int] = []
            while len(ids) < clients:
                ids += [k for k, _ in await asyncio.gather(*(jc.start(c) for c in conns[:4]))]
            for conn, kernel_id in zip(conns, ids[:clients], strict=True):
                await jc.add_cell(conn, kernel_id, 1, LOAD_CELL)
            sides[str(checkout)] = list(zip(conns, ids[:clients], strict=True))
        kernels = await asyncio.to_thread(raw_kernels, raw, clients)
        for pairs in sides.values():  # warm-up
            await jupycell_load(pairs, 1, 1)
        await asyncio.to_thread(raw_load, kernels, LOAD_CELL, 1)
        pids = {name: g.process.process.pid for name, g in zip(sides, gateways, strict=True)}  # type: ignore[union-attr]
        cpu = dict.fromkeys(pids, 0.0)
        results = {name: LoadResult() for name in [RAW, *sides]}
        for _ in range(slices):
            order = [RAW, *sides]
            random.shuffle(order)
            for name in order:
                if name == RAW:
                    results[RAW].add(await asyncio.to_thread(raw_load, kernels, LOAD_CELL, seconds / slices))
                    continue
                before = cpu_seconds(pids[name])
                results[name].add(await jupycell_load(sides[name], 1, seconds / slices))
                cpu[name] += cpu_seconds(pids[name]) - before
        for kernel in kernels:
            raw.stop(kernel)
        baseline = results[RAW].throughput
        for name, result in results.items():
            line = (
                f"{name:40s} {result.throughput:6.1f} cells/s ({result.throughput / baseline:4.2f}x)"
                f"  errors {len(result.errors)} of {len(result.latencies)}"
                f"  p50 {p50(result.latencies) * 1e3:6.1f} ms  p99 {percentile(result.latencies, 99) * 1e3:6.1f} ms"
            )
            if name in cpu:
                line += f"  gateway CPU {cpu[name] / max(len(result.latencies), 1) * 1e3:.3f} ms per request"
            print(line, flush=True)
        for pairs in sides.values():
            for conn, _ in pairs:
                await conn.close()
    finally:
        for gateway in gateways:
            gateway.close()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_load", description=__doc__)
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15, help="load time per side, over all slices")
    parser.add_argument("--slices", type=int, default=3)
    parser.add_argument("--image", default="jupycell-sandbox:latest")
    args = parser.parse_args()
    asyncio.run(compare([c.resolve() for c in args.checkouts], args.clients, args.seconds, args.slices, args.image))


if __name__ == "__main__":
    main()
