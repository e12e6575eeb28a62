"""A change's effect on the `1+1` run, measured in one run: gateways of several checkouts against raw jupyter_client.

``python -m bench.compare_checkouts CHECKOUT [CHECKOUT ...] [--requests N] [--image IMAGE]`` starts one gateway
per checkout (each its own instance, pool off), one kernel each with a cell `1+1`, and a raw kernel container;
then, N times: one raw ``execute("1+1")``, then one ``POST /cell`` run on each gateway in a random order. Requests
are interleaved one by one, so every checkout sees the same moments of a shared machine. Prints each checkout's
p50 and p99 against the raw round trip, and its gateway process's CPU time per request (from ``/proc``). To
compare a branch with main: ``git archive main | tar -x -C /tmp/main-src`` and pass both directories.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import testing.harness as harness
from bench import jupycell as jc
from bench.raw_floor import RawFloor
from bench.stats import p50, percentile


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def compare(checkouts: list[Path], requests: int, image: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="jcc-"))
    gateways: list[jc.Gateway] = []
    raw = RawFloor(image)
    try:
        for number, checkout in enumerate(checkouts):
            harness.ROOT = checkout  # the process runs uvicorn from that checkout
            gateways.append(jc.Gateway(root / f"g{number}", f"cmp{number}", pool_size=0, sandbox_image=image))
        sides = []
        for checkout, gateway in zip(checkouts, gateways, strict=True):
            conn = await gateway.connection()
            kernel_id, _ = await jc.start(conn)
            await jc.add_cell(conn, kernel_id, 1, "1+1")
            sides.append((str(checkout), conn, kernel_id))
        raw_kernel, _ = raw.start()
        for _ in range(20):  # warm-up
            raw_kernel.execute("1+1")
            for _, conn, kernel_id in sides:
                await jc.run_cell(conn, kernel_id, 1)
        pids = {name: gateway.process.process.pid for (name, _, _), gateway in zip(sides, gateways, strict=True)}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        samples: dict[str, list[float]] = {"raw jupyter_client": [], **{name: [] for name, _, _ in sides}}
        for _ in range(requests):
            begin = time.perf_counter()
            raw_kernel.execute("1+1")
            samples["raw jupyter_client"].append(time.perf_counter() - begin)
            random.shuffle(sides)
            for name, conn, kernel_id in sides:
                begin = time.perf_counter()
                await jc.run_cell(conn, kernel_id, 1)
                samples[name].append(time.perf_counter() - begin)
        raw.stop(raw_kernel)
        raw_p50, raw_p99 = p50(samples["raw jupyter_client"]), percentile(samples["raw jupyter_client"], 99)
        for name, values in samples.items():
            line = (
                f"{name:40s} p50 {p50(values) * 1e3:6.2f} ms ({p50(values) / raw_p50:4.2f}x)"
                f"  p99 {percentile(values, 99) * 1e3:6.2f} ms ({percentile(values, 99) / raw_p99:4.2f}x)"
            )
            if name in pids:
                used = cpu_seconds(pids[name]) - cpu_before[name]
                line += f"  gateway CPU {used / requests * 1e3:.3f} ms per request"
            print(line)
        for _, conn, _ in sides:
            await conn.close()
    finally:
        for gateway in gateways:
            gateway.close()
        raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare_checkouts", description=__doc__)
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--requests", type=int, default=600, help="round trips per side")
    parser.add_argument("--image", default="jupycell-sandbox:latest")
    args = parser.parse_args()
    asyncio.run(compare([c.resolve() for c in args.checkouts], args.requests, args.image))


if __name__ == "__main__":
    main()
