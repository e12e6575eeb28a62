"""The benchmark: JupyCell against the raw floor and Jupyter Kernel Gateway, measured in the same run.

Run ``make bench`` (full) or ``make bench BENCH_ARGS=--quick``. Everything it starts is on loopback or is one of
the project's own containers (labelled ``jupycell.instance=bench-*``), and is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from bench import jupycell as jc
from bench.jkg import JkgServer
from bench.kernel_floor import STOCK, Variant
from bench.kernel_floor import measure as measure_kernels
from bench.load import LoadResult, jupycell_load, raw_kernels, raw_load
from bench.procs import LoadSampler, container_memory_mb, machine
from bench.pyspy import PySpy, summarize
from bench.raw_floor import RawFloor
from bench.stats import Table, ms, p50, percentile, ratio

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
LOAD_CELL = "sum(i * i for i in range(1000))"
LOAD_SLICES = 3  # the load phases: JupyCell and raw jupyter_client alternate this many times


@dataclass
class Plan:
    starts: int  # cold starts (and raw floor starts), interleaved
    warm_starts: int
    first_results: int  # start -> first result, JupyCell warm and JKG
    run_rounds: int  # rounds of `1+1`: raw, JupyCell and JKG interleaved
    run_batch: int
    idle_kernels: int
    clients: list[int]  # one load phase per count: JupyCell and raw jupyter_client, same count of kernels
    duration: float
    kernel_executes: int  # `1+1` round trips per kernel: JupyCell's sandbox kernel vs stock ipykernel
    restarts: int
    pool_size: int = 5

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        plan = (
            cls(
                starts=4,
                warm_starts=6,
                first_results=5,
                run_rounds=3,
                run_batch=40,
                idle_kernels=30,
                clients=[20, 50],
                duration=5,
                kernel_executes=300,
                restarts=5,
            )
            if args.quick
            else cls(
                starts=10,
                warm_starts=20,
                first_results=10,
                run_rounds=6,
                run_batch=100,
                idle_kernels=100,
                clients=[20, 50],
                duration=30,
                kernel_executes=1000,
                restarts=10,
            )
        )
        if args.clients:
            plan.clients = [int(n) for n in args.clients.split(",")]
        if args.duration:
            plan.duration = args.duration
        if args.idle_kernels:
            plan.idle_kernels = args.idle_kernels
        plan.idle_kernels = max(plan.idle_kernels, *plan.clients)
        return plan


async def measure(args: argparse.Namespace, table: Table) -> None:
    plan = Plan.of(args)
    root = Path(tempfile.mkdtemp(prefix="jcb-"))
    raw = RawFloor(args.image)
    jkg: JkgServer | None = None
    cold = warm = None
    try:
        jkg = None if args.no_jkg else JkgServer()
        cold = jc.Gateway(root / "cold", "cold", pool_size=0, sandbox_image=args.image)
        warm = jc.Gateway(root / "warm", "warm", pool_size=plan.pool_size, sandbox_image=args.image)
        cold_conn, warm_conn = await cold.connection(), await warm.connection()

        # --- starts: raw floor and cold POST /start, interleaved so both see the same machine -----------------
        print("starts: raw floor vs cold POST /start ...", flush=True)
        raw_starts, cold_starts = [], []
        for _ in range(plan.starts):
            kernel, seconds = raw.start()
            raw_starts.append(seconds)
            raw.stop(kernel)
            kernel_id, seconds = await jc.start(cold_conn)
            cold_starts.append(seconds)
            await jc.shutdown(cold_conn, kernel_id)
        floor = p50(raw_starts)
        table.add(
            "`POST /start`, pool off (cold), p50",
            ms(p50(cold_starts)),
            f"raw docker run + ready {ms(floor)}",
            ratio(p50(cold_starts), floor),
            "<= 1.30x",
            p50(cold_starts) <= 1.3 * floor,
        )

        # --- warm starts: each from a full pool ---------------------------------------------------------------
        print("warm POST /start ...", flush=True)
        warm_starts = []
        _, before = await warm_conn.request("GET", "/pool")
        for _ in range(plan.warm_starts):
            await jc.wait_pool_full(warm_conn)
            kernel_id, seconds = await jc.start(warm_conn)
            warm_starts.append(seconds)
            await jc.shutdown(warm_conn, kernel_id)
        _, after = await warm_conn.request("GET", "/pool")
        hits = after["hits"] - before["hits"]
        table.add(
            "`POST /start`, warm pool, p50",
            ms(p50(warm_starts)),
            f"raw docker run + ready {ms(floor)}",
            ratio(p50(warm_starts), floor),
            "<= 20 ms (peers claim 90-150 ms)",
            p50(warm_starts) <= 0.020,
        )
        table.notes.append(
            f"warm starts: {hits} of {plan.warm_starts} were pool hits; p99 {ms(percentile(warm_starts, 99))}"
        )

        # --- start to first result: JupyCell (warm) and JKG -----------------------------------------------------
        print("start -> first result: JupyCell warm vs JKG ...", flush=True)
        firsts, jkg_firsts = [], []
        for _ in range(plan.first_results):
            await jc.wait_pool_full(warm_conn)
            begin = time.perf_counter()
            kernel_id, _ = await jc.start(warm_conn)
            await jc.add_cell(warm_conn, kernel_id, 1, "1+1")
            await jc.run_cell(warm_conn, kernel_id, 1)
            firsts.append(time.perf_counter() - begin)
            await jc.shutdown(warm_conn, kernel_id)
            if jkg is not None:
                kernel, seconds = jkg.start_kernel()
                jkg_firsts.append(seconds)
                kernel.shutdown()
        table.add(
            "start + first `1+1` result (warm), p50",
            ms(p50(firsts)),
            f"JKG POST /api/kernels + ws {ms(p50(jkg_firsts))}" if jkg_firsts else "—",
            ratio(p50(firsts), p50(jkg_firsts)) if jkg_firsts else "—",
            "<= 40 ms",
            p50(firsts) <= 0.040,
        )

        # --- restart with a warm pool -----------------------------------------------------------------------------
        print("POST /kernels/{id}/restart (warm pool) ...", flush=True)
        kernel_id, _ = await jc.start(warm_conn)
        restarts = []
        for _ in range(plan.restarts):
            await jc.wait_pool_full(warm_conn)
            begin = time.perf_counter()
            status, body = await warm_conn.request("POST", f"/kernels/{kernel_id}/restart")
            restarts.append(time.perf_counter() - begin)
            if status != 200:
                raise RuntimeError(f"restart: {status} {body}")
        await jc.shutdown(warm_conn, kernel_id)
        table.add(
            "`POST /kernels/{id}/restart`, warm pool, p50",
            ms(p50(restarts)),
            f"raw docker run + ready {ms(floor)}",
            ratio(p50(restarts), floor),
            "<= 50 ms",
            p50(restarts) <= 0.050,
        )

        # --- `1+1` round trips: raw jupyter_client, HTTP, JKG websocket, interleaved rounds ----------------------
        print("`1+1` round trips ...", flush=True)
        raw_kernel, _ = raw.start()
        kernel_id, _ = await jc.start(warm_conn)
        await jc.add_cell(warm_conn, kernel_id, 1, "1+1")
        jkg_kernel = jkg.start_kernel()[0] if jkg is not None else None
        raw_runs, http_runs, jkg_runs = [], [], []
        await jc.wait_pool_full(warm_conn)  # no refill competing for the CPU while measuring
        for _ in range(20):  # warm-up
            raw_kernel.execute("1+1")
            await jc.run_cell(warm_conn, kernel_id, 1)
            if jkg_kernel:
                jkg_kernel.execute("1+1")
        spy = PySpy(warm.process.process.pid, args.profile) if args.profile else None
        # One by one (raw, JupyCell, JKG, raw, ...): a shared machine's load changes within a batch's seconds.
        for _ in range(plan.run_rounds * plan.run_batch):
            begin = time.perf_counter()
            raw_kernel.execute("1+1")
            raw_runs.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            result = await jc.run_cell(warm_conn, kernel_id, 1)
            http_runs.append(time.perf_counter() - begin)
            assert result["status"] == "ok"
            if jkg_kernel:
                begin = time.perf_counter()
                jkg_kernel.execute("1+1")
                jkg_runs.append(time.perf_counter() - begin)
        if spy is not None:
            spy.stop()
            print("gateway profile during the `1+1` rounds (busy samples by innermost frame):")
            print("\n".join(summarize(args.profile)))
        raw.stop(raw_kernel)
        await jc.shutdown(warm_conn, kernel_id)
        if jkg_kernel:
            jkg_kernel.shutdown()
        raw_p50 = p50(raw_runs)
        table.add(
            "`POST /cell` run `1+1`, p50",
            ms(p50(http_runs)),
            f"raw jupyter_client over IPC {ms(raw_p50)}",
            ratio(p50(http_runs), raw_p50),
            "<= 1.20x",
            p50(http_runs) <= 1.2 * raw_p50,
        )
        if jkg_runs:
            speedup = p50(jkg_runs) / p50(http_runs)
            table.add(
                "`POST /cell` run `1+1`, p50 vs JKG",
                ms(p50(http_runs)),
                f"JKG websocket {ms(p50(jkg_runs))}",
                f"{speedup:.1f}x faster",
                ">= 10x faster",
                speedup >= 10,
            )
        raw_p99 = percentile(raw_runs, 99)
        table.add(
            "`POST /cell` run `1+1`, p99",
            ms(percentile(http_runs, 99)),
            f"raw jupyter_client {ms(raw_p99)}",
            ratio(percentile(http_runs, 99), raw_p99),
            "<= 1.50x",
            percentile(http_runs, 99) <= 1.5 * raw_p99,
        )

        # --- the kernel itself: JupyCell's sandbox kernel vs stock ipykernel, same image, interleaved ------------
        print("raw `1+1`: JupyCell's sandbox kernel vs stock ipykernel ...", flush=True)
        stock, ours = Variant("stock ipykernel", STOCK), Variant("JupyCell kernel")
        measure_kernels(raw, [stock, ours], plan.kernel_executes)
        speedup = p50(stock.samples) / p50(ours.samples)
        table.add(
            "raw kernel `1+1` round trip, p50",
            ms(p50(ours.samples)),
            f"stock ipykernel (same image, unconfigured) {ms(p50(stock.samples))}",
            f"{speedup:.2f}x faster",
            ">= 2x faster",
            speedup >= 2,
        )
        if stock.cpu_per_execute and ours.cpu_per_execute:
            table.add(
                "raw kernel `1+1`: kernel CPU time per execute",
                ms(ours.cpu_per_execute),
                f"stock ipykernel {ms(stock.cpu_per_execute)}",
                f"{stock.cpu_per_execute / ours.cpu_per_execute:.2f}x less",
            )
        table.notes.append(
            f"raw kernel p99: JupyCell kernel {ms(percentile(ours.samples, 99))}, stock "
            f"{ms(percentile(stock.samples, 99))}; {plan.kernel_executes} round trips each, interleaved one by one"
        )

        # --- idle kernels: memory ------------------------------------------------------------------------------
        print(f"{plan.idle_kernels} idle kernels ...", flush=True)
        raw_idle, _ = raw.start()
        await asyncio.sleep(3)
        raw_memory = container_memory_mb(raw_idle.container.id)
        raw.stop(raw_idle)
        rss_before = warm.rss_mb()
        conns = [await warm.connection() for _ in range(4)]
        kernels: list[int] = []

        async def starter(conn) -> None:
            while len(kernels) < plan.idle_kernels:
                kernels.append(-1)  # reserve a slot
                kernel_id, _ = await jc.start(conn)
                kernels[kernels.index(-1)] = kernel_id

        await asyncio.gather(*(starter(c) for c in conns))
        await asyncio.sleep(5)
        memory = warm.container_memory_mb()
        _, listing = await warm_conn.request("GET", "/kernels")
        live = sum(1 for k in listing["kernels"] if k["state"] == "idle")
        rss_at = warm.rss_mb()
        if plan.idle_kernels >= 100:
            table.add("live idle kernels", str(live), "—", "—", ">= 100", live >= 100)
        else:
            table.add("live idle kernels", str(live), "—", "—", f">= 100 (this run started {plan.idle_kernels})")
        table.add(
            "memory per idle kernel (container, p50)",
            f"{p50(memory):.0f} MiB",
            f"raw kernel container {raw_memory:.0f} MiB" if raw_memory else "—",
            ratio(p50(memory), raw_memory) if raw_memory else "—",
        )
        table.add(
            f"gateway RSS at {live} kernels",
            f"{rss_at:.0f} MiB",
            f"at 0 kernels {rss_before:.0f} MiB",
            f"+{(rss_at - rss_before) / max(live, 1):.2f} MiB/kernel",
        )
        table.notes.append(
            f"container memory = cgroup usage minus inactive file cache (as `docker stats`), over {len(memory)} "
            f"containers (kernels + pool); p99 {percentile(memory, 99):.0f} MiB"
        )

        # --- load: N clients, each on its own kernel: JupyCell vs raw jupyter_client on as many containers --------
        all_clients = []
        with_cell: set[int] = set()  # kernels that already have the load cell (a later phase reuses them)
        for count in plan.clients:
            print(f"{count} clients x {plan.duration:g} s: JupyCell, raw jupyter_client, alternately ...", flush=True)
            clients = [(await warm.connection(), kernel_id) for kernel_id in kernels[:count]]
            all_clients += [conn for conn, _ in clients]
            for conn, kernel_id in clients:
                if kernel_id not in with_cell:
                    await jc.add_cell(conn, kernel_id, 1, LOAD_CELL)
                    with_cell.add(kernel_id)
            await jc.wait_pool_full(warm_conn)
            raw_load_kernels = await asyncio.to_thread(raw_kernels, raw, count)
            # Alternating slices (JupyCell, raw, JupyCell, raw, ...): on a shared machine whose load changes by the
            # minute, both sides then see the same minutes.
            mine, theirs = LoadResult(), LoadResult()
            for _ in range(LOAD_SLICES):
                mine.add(await jupycell_load(clients, 1, plan.duration / LOAD_SLICES))
                theirs.add(await asyncio.to_thread(raw_load, raw_load_kernels, LOAD_CELL, plan.duration / LOAD_SLICES))
            for kernel in raw_load_kernels:
                raw.stop(kernel)
            label = f"{count} clients x {plan.duration:g} s, own kernel each"
            share = mine.throughput / theirs.throughput if theirs.throughput else float("nan")
            table.add(
                f"{label}: throughput",
                f"{mine.throughput:.0f} cells/s",
                f"raw jupyter_client, {count} containers: {theirs.throughput:.0f} cells/s",
                f"{share:.2f}x",
                ">= 0.80x" if count >= 50 else "",
                share >= 0.8 if count >= 50 else None,
            )
            table.add(
                f"{label}: latency p50 / p99",
                f"{ms(p50(mine.latencies))} / {ms(percentile(mine.latencies, 99))}",
                f"raw {ms(p50(theirs.latencies))} / {ms(percentile(theirs.latencies, 99))}",
            )
            table.add(
                f"{label}: errors",
                f"{len(mine.errors)} of {len(mine.latencies)}",
                f"raw {len(theirs.errors)} of {len(theirs.latencies)}",
                "—",
                "0",
                not mine.errors,
            )
            if mine.errors or theirs.errors:
                first = f"JupyCell {mine.errors[:3]}, raw {theirs.errors[:3]}"
                table.notes.append(f"first errors ({count} clients): {first}")
        for conn in all_clients + conns + [cold_conn, warm_conn]:
            await conn.close()
    except BaseException:
        for gateway in (cold, warm):
            if gateway is not None:
                print(f"--- log of gateway {gateway.instance}:\n{gateway.process.log()[-3000:]}")
        raise
    finally:
        print("cleaning up ...", flush=True)
        for closing in [x.close for x in (cold, warm, raw, jkg) if x is not None]:
            try:
                closing()
            except Exception as error:  # keep cleaning
                print(f"clean-up: {error!r}")
        shutil.rmtree(root, ignore_errors=True)


def write_docs(table: Table, header: str, quick: bool) -> None:
    block = (
        "<!-- bench:start (written by `make bench`) -->\n"
        f"{header}\n\n{table.markdown()}\n" + "".join(f"- {n}\n" for n in table.notes) + "<!-- bench:end -->"
    )
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n\n<!-- bench:start --><!-- bench:end -->\n"
    text = re.sub(r"<!-- bench:start.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
    DOCS.write_text(text)
    print(f"results written to {DOCS.relative_to(ROOT)}" + (" (quick mode)" if quick else ""))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 30 idle kernels, load phases of 5 s")
    parser.add_argument("--clients", help="concurrent clients in the load phases, comma-separated (default 20,50)")
    parser.add_argument("--duration", type=float, help="seconds of the load phase")
    parser.add_argument("--idle-kernels", type=int, help="kernels kept live for the memory figures")
    parser.add_argument("--image", default="jupycell-sandbox:latest", help="sandbox image (built by make images)")
    parser.add_argument("--no-jkg", action="store_true", help="skip the Jupyter Kernel Gateway baseline")
    parser.add_argument("--profile", type=Path, help="py-spy the gateway during the `1+1` rounds, raw stacks to FILE")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()

    try:
        docker.from_env().images.get(args.image)
    except docker.errors.ImageNotFound:
        raise SystemExit(f"image {args.image!r} not found: run `make images` first") from None
    described = machine()
    sampler = LoadSampler()
    table = Table()
    started = time.perf_counter()
    asyncio.run(measure(args, table))
    load = sampler.stop()
    header = (
        f"Machine: {described}.  \n{load}.  \n"
        f"Mode: {'quick' if args.quick else 'full'}; took {time.perf_counter() - started:.0f} s."
    )
    print()
    print(header.replace("  \n", "\n"))
    print()
    print(table.text())
    for note in table.notes:
        print(f"- {note}")
    if args.write_docs:
        write_docs(table, header, args.quick)


if __name__ == "__main__":
    main()
