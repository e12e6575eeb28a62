"""Throughput under load: N clients, each on its own kernel, for a fixed time.

JupyCell's side: N keep-alive HTTP clients in the benchmark's event loop, each running one cell of its own kernel
back to back (``POST /cell`` run). The baseline: the same N clients talking raw jupyter_client
(``BlockingKernelClient``, one thread each) to N kernel containers of the same image started directly
(``bench.raw_floor``), running the same code. The gap between the two is what the gateway costs under load.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench import jupycell as jc
from bench.client import Connection
from bench.raw_floor import RawFloor, RawKernel


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def add(self, other: LoadResult) -> None:
        """Fold in another slice of the same load (the phases alternate with the baseline's)."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.elapsed += other.elapsed


async def jupycell_load(clients: list[tuple[Connection, int]], cell: int, duration: float) -> LoadResult:
    """Each (connection, kernel id) runs cell ``cell`` of its kernel back to back for ``duration`` seconds."""
    result = LoadResult()
    stop_at = time.perf_counter() + duration

    async def client(conn: Connection, kernel_id: int) -> None:
        while time.perf_counter() < stop_at:
            begin = time.perf_counter()
            try:
                body = await jc.run_cell(conn, kernel_id, cell)
                if body["status"] != "ok":
                    result.errors.append(body["status"])
            except Exception as error:  # counted, reported
                result.errors.append(repr(error))
            result.latencies.append(time.perf_counter() - begin)

    began = time.perf_counter()
    await asyncio.gather(*(client(conn, kernel_id) for conn, kernel_id in clients))
    result.elapsed = time.perf_counter() - began
    return result


def raw_kernels(floor: RawFloor, count: int, parallel: int = 4) -> list[RawKernel]:
    """``count`` raw kernel containers, started ``parallel`` at a time."""
    with ThreadPoolExecutor(parallel) as pool:
        return [kernel for kernel, _ in pool.map(lambda _: floor.start(), range(count))]


def raw_load(kernels: list[RawKernel], code: str, duration: float) -> LoadResult:
    """One thread per kernel runs ``code`` back to back for ``duration`` seconds (blocking calls release the GIL
    while they wait on the sockets)."""
    result = LoadResult()
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration

    def client(kernel: RawKernel) -> None:
        while time.perf_counter() < stop_at:
            begin = time.perf_counter()
            try:
                reply = kernel.execute(code)
                error = None if reply["content"]["status"] == "ok" else reply["content"]["status"]
            except Exception as exc:  # counted, reported
                error = repr(exc)
            with lock:
                result.latencies.append(time.perf_counter() - begin)
                if error is not None:
                    result.errors.append(error)

    threads = [threading.Thread(target=client, args=(kernel,)) for kernel in kernels]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - began
    return result
