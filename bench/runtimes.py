"""Kernel start and ``1+1`` latency through the HTTP API under each container runtime (runc, runsc/gVisor).

Starts its own gateway process (both runtimes allowed), then for each runtime: ``STARTS`` cold ``POST /start``
and ``RUNS`` runs of ``1+1`` on one kernel. Prints one table.

Usage: ``python bench/runtimes.py [starts=5] [runs=50]`` (or ``make bench-runtimes``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.harness import GatewayProcess, remove_instance_containers  # noqa: E402

RUNTIMES = ("runc", "runsc")


def measure(url: str, runtime: str, starts: int, runs: int) -> dict[str, float]:
    http = httpx.Client(base_url=url, timeout=120)
    start_times, run_times, kernels = [], [], []
    try:
        for _ in range(starts):
            t0 = time.perf_counter()
            response = http.post("/start", json={"runtime": runtime})
            start_times.append(time.perf_counter() - t0)
            response.raise_for_status()
            kernels.append(response.json()["kernel_id"])
        kernel = kernels[0]
        http.post("/cell", json={"kernel_id": kernel, "action": "add", "cell_number": 1, "code": "1+1"})
        for i in range(runs + 3):
            t0 = time.perf_counter()
            result = http.post("/cell", json={"kernel_id": kernel, "action": "run", "cell_number": 1}).json()
            if i >= 3:  # warm-up runs are not counted
                run_times.append(time.perf_counter() - t0)
            assert result["status"] == "ok", result
    finally:
        for kernel in kernels:
            http.delete(f"/kernels/{kernel}")
        http.close()
    return {
        "start_p50": statistics.median(start_times),
        "start_max": max(start_times),
        "run_p50": statistics.median(run_times),
        "run_p90": statistics.quantiles(run_times, n=10)[-1] if len(run_times) > 1 else run_times[0],
    }


def main() -> None:
    starts = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory(prefix="jcb-") as root:
        gateway = GatewayProcess(Path(root) / "k", allowed_runtimes=",".join(RUNTIMES), audit_log="off").start()
        try:
            figures = {runtime: measure(gateway.url, runtime, starts, runs) for runtime in RUNTIMES}
        finally:
            gateway.stop()
            remove_instance_containers(gateway.instance)
    print(f"\nKernel start and 1+1 through the HTTP API ({starts} cold starts, {runs} runs each)\n")
    print(f"{'figure':<28}" + "".join(f"{r:>12}" for r in RUNTIMES) + f"{'runsc/runc':>12}")
    for key, label in [
        ("start_p50", "POST /start p50 (s)"),
        ("start_max", "POST /start max (s)"),
        ("run_p50", "1+1 run p50 (ms)"),
        ("run_p90", "1+1 run p90 (ms)"),
    ]:
        scale = 1000 if key.startswith("run") else 1
        values = [figures[r][key] * scale for r in RUNTIMES]
        print(f"{label:<28}" + "".join(f"{v:>12.3f}" for v in values) + f"{values[1] / values[0]:>11.1f}x")


if __name__ == "__main__":
    main()
