"""Where the gateway's share of a `POST /cell` run goes: py-spy on the gateway while clients run cells back to back.

``python -m bench.gateway_profile [--clients N] [--seconds S] [--image IMAGE] [--raw FILE]``: starts one gateway
(``uvicorn --factory gateway.main:create_app``, as the image runs it), N kernels (default 1), one cell each (`1+1`
for one client; the load phase's ``sum(i * i for i in range(1000))`` for more), attaches ``py-spy record
--threads`` (busy samples only: py-spy leaves out threads the OS reports idle) and has N keep-alive clients run
their cell back to back. Prints, per request, the busy milliseconds of the event loop's thread by bucket (what the
innermost known frame is), the rest of the wall time (the loop waiting), and the busy milliseconds of every other
thread. On a loaded machine a thread that is runnable but waiting for a CPU counts as busy.
docs/benchmarks.md ("The gateway") shows the splits made with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import jupycell as jc
from bench.load import jupycell_load
from bench.pyspy import PySpy, stacks
from bench.raw_floor import RawFloor

LOAD_CELL = "sum(i * i for i in range(1000))"

#: Buckets by the innermost frame that matches, walking outwards: (bucket, substrings of "function (file:line)").
BUCKETS = [
    ("audit log (build the line)", ("security/audit.py",)),
    ("security middleware (auth, rate, body)", ("security/",)),
    ("metrics (middleware, observer)", ("gateway/metrics/",)),
    ("store calls on the loop (hand-off to its thread)", ("adapters/sql/",)),
    ("jupyter_client Session: sign, serialise, parse", ("jupyter_client/session.py", "jsonutil.py", "hmac.py")),
    ("pyzmq send/recv (zmq.asyncio)", ("zmq/",)),
    ("jupyter_client channels", ("jupyter_client/",)),
    ("kernel client (gateway/protocol)", ("gateway/protocol/",)),
    ("core: runner, lock, outputs, notebook", ("gateway/kernels/", "gateway/notebook/")),
    ("routes, dependencies, response encoding (gateway/api)", ("gateway/api/",)),
    ("pydantic", ("pydantic",)),
    ("FastAPI/Starlette routing, request, response", ("fastapi/", "starlette/")),
    ("uvicorn/httptools HTTP", ("uvicorn/", "httptools")),
    ("logging", ("logging/",)),
    ("asyncio machinery (tasks, futures, timers)", ("asyncio/", "uvloop")),
]
_LOOP_IDLE = ("Runner.run", "run_forever", "_run_once", "run_until_complete")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid`` by thread name (names that repeat are summed)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[re.sub(r"_?\d+$", "", name) or name] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(found)


def split(raw: Path, requests: int, seconds: float, rate: int) -> list[str]:
    """Milliseconds per request by bucket (event loop thread) and busy milliseconds per request of other threads."""
    loop: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for thread, frames, count in stacks(raw):
        innermost = frames[-1]
        if "MainThread" in thread:
            if innermost.startswith(_LOOP_IDLE):
                loop["uvloop itself (polling, callbacks in C)"] += count
                continue
            bucket = "other"
            for frame in reversed(frames):
                found = next((name for name, keys in BUCKETS if any(k in frame for k in keys)), None)
                if found is not None:
                    bucket = found
                    break
            loop[bucket] += count
        else:
            others[f"{thread}: {innermost.split(' (')[0]}"] += count
    per = 1e3 / rate / requests  # ms per request of one sample
    wall = seconds * 1e3 / requests
    busy = sum(loop.values()) * per
    lines = [f"{requests} requests in {seconds:.1f} s: {wall:.2f} ms of wall time each; event loop thread:"]
    lines += [f"  {n * per:6.3f} ms  {bucket}" for bucket, n in loop.most_common()]
    lines.append(f"  {busy:6.3f} ms  busy in all; {max(wall - busy, 0):.3f} ms waiting (kernel, client, other threads)")
    lines.append("other threads, busy ms per request:")
    lines += [f"  {n * per:6.3f} ms  {what}" for what, n in others.most_common(12)]
    return lines


async def profile(args: argparse.Namespace, out: Path) -> None:
    gateway = jc.Gateway(out.parent / "g", "prof", pool_size=0, sandbox_image=args.image)
    try:
        conns = [await gateway.connection() for _ in range(args.clients)]
        kernels = await asyncio.gather(*(jc.start(c) for c in conns[: min(4, len(conns))]))
        ids = [k for k, _ in kernels]
        while len(ids) < args.clients:
            ids += [k for k, _ in await asyncio.gather(*(jc.start(c) for c in conns[:4]))]
        ids = ids[: args.clients]
        code = "1+1" if args.clients == 1 else LOAD_CELL
        for conn, kernel_id in zip(conns, ids, strict=True):
            await jc.add_cell(conn, kernel_id, 1, code)
        await jupycell_load(list(zip(conns, ids, strict=True)), 1, 2)  # warm-up
        assert gateway.process.process is not None
        pid = gateway.process.process.pid
        spy = PySpy(pid, out, rate=args.rate, extra=("--threads", *(("--gil",) if args.gil else ())))
        cpu_before = thread_cpu(pid)
        began = time.perf_counter()
        result = await jupycell_load(list(zip(conns, ids, strict=True)), 1, args.seconds)
        elapsed = time.perf_counter() - began
        cpu_after = thread_cpu(pid)
        spy.stop()
        requests = len(result.latencies)
        print(f"{args.clients} client(s), errors: {len(result.errors)}")
        print("\n".join(split(out, requests, elapsed, args.rate)))
        used = {name: cpu_after.get(name, 0) - cpu_before.get(name, 0) for name in cpu_after}
        total = sum(used.values())
        print(f"gateway process: {total / elapsed:.2f} CPUs busy on average ({requests / elapsed:.0f} requests/s)")
        print(f"CPU time per request by thread (/proc, {total / requests * 1e3:.3f} ms in all):")
        for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
            if seconds > 0:
                print(f"  {seconds / requests * 1e3:6.3f} ms  {name}")
        for conn in conns:
            await conn.close()
        if args.clients == 1:
            cpu = raw_client_cpu(args)
            print(f"raw jupyter_client, CPU time of the client's process per `1+1`: {cpu * 1e3:.3f} ms")
    finally:
        gateway.close()


def raw_client_cpu(args: argparse.Namespace, executes: int = 500) -> float:
    """CPU seconds the raw client (``BlockingKernelClient`` in this process) spends per `1+1` on a kernel container:
    the baseline's own share of the machine, to set against the gateway's."""
    floor = RawFloor(args.image)
    try:
        kernel, _ = floor.start()
        for _ in range(50):
            kernel.execute("1+1")
        began = time.process_time()
        for _ in range(executes):
            kernel.execute("1+1")
        return (time.process_time() - began) / executes
    finally:
        floor.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_profile", description=__doc__)
    parser.add_argument("--image", default="jupycell-sandbox:latest")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (Python's CPU)")
    args = parser.parse_args()
    out = args.raw or Path(tempfile.mkdtemp(prefix="jcg-")) / "gateway.raw"
    asyncio.run(profile(args, out))


if __name__ == "__main__":
    main()
