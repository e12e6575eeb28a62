"""Warm ``POST /start`` through each of two replicas of one deployment (one PostgreSQL, shared warm pool) against
the 20 ms target (issue 11), with a single SQLite gateway (in-process pool) measured in the same run as the
baseline; then 30 concurrent starts spread over the two replicas.

Each timed start is warm: it waits until the pool reports a ready kernel first, and checks that the start was a
hit. Needs a PostgreSQL server: ``JUPYCELL_TEST_POSTGRES_URL=$(scripts/ensure-postgres.sh)``.
Usage: ``python -m bench.replicas [starts per gateway=20]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.stats import p50, percentile
from testing.harness import GatewayProcess, postgres_database, unique_instance, wait_for

TARGET_MS = 20.0
POOL_SIZE = 4
SETTINGS = {"pool_size": POOL_SIZE, "mem_limit_mb": 256, "max_kernels": 64, "audit_log": "off"}


def warm_starts(url: str, runs: int) -> list[float]:
    """Seconds of ``runs`` warm starts (each a pool hit), each kernel shut down after it is timed."""
    times = []
    with httpx.Client(base_url=url, timeout=300) as http:
        for _ in range(runs):
            wait_for("a ready pool kernel", lambda: http.get("/pool").json()["ready"] >= 1, timeout=240)
            hits = http.get("/pool").json()["hits"]
            began = time.perf_counter()
            response = http.post("/start")
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text
            assert http.get("/pool").json()["hits"] == hits + 1, "the timed start was not a pool hit"
            assert http.delete(f"/kernels/{response.json()['kernel_id']}").status_code == 200
    return times


def concurrent_starts(urls: list[str], count: int) -> tuple[int, float]:
    """How many of ``count`` concurrent starts spread over ``urls`` succeeded, and the seconds they all took."""

    def start(n: int) -> int:
        with httpx.Client(base_url=urls[n % len(urls)], timeout=600) as http:
            return http.post("/start").status_code

    began = time.perf_counter()
    with ThreadPoolExecutor(count) as threads:
        codes = list(threads.map(start, range(count)))
    return codes.count(200), time.perf_counter() - began


def ms(seconds: list[float], q: float = 50) -> float:
    return (percentile(seconds, q) if q != 50 else p50(seconds)) * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if not os.environ.get("JUPYCELL_TEST_POSTGRES_URL"):
        sys.exit("needs PostgreSQL: JUPYCELL_TEST_POSTGRES_URL=$(scripts/ensure-postgres.sh) python -m bench.replicas")
    with tempfile.TemporaryDirectory(prefix="jc-") as root, postgres_database() as database:
        kernels = Path(root) / "k"
        instance = unique_instance("bench-rep")
        single = GatewayProcess(Path(root) / "single", **SETTINGS)
        replicas = []
        for name in ("a", "b"):
            gateway = GatewayProcess(kernels, instance=instance, database_url=database, **SETTINGS)
            gateway.log_path = gateway.log_path.with_name(f"gateway-{instance}-{name}.log")
            replicas.append(gateway)
        with single, replicas[0], replicas[1]:
            figures = {"single gateway, SQLite (in-process pool)": warm_starts(single.url, runs)}
            for name, gateway in zip(("a", "b"), replicas, strict=True):
                figures[f"replica {name}, PostgreSQL (shared pool)"] = warm_starts(gateway.url, runs)
            print(f"\nwarm POST /start, {runs} starts each (target p50 <= {TARGET_MS:g} ms on every replica)")
            print(f"{'':44} {'p50 ms':>8} {'p90 ms':>8}  target")
            baseline = ms(figures["single gateway, SQLite (in-process pool)"])
            for label, seconds in figures.items():
                verdict = "" if "single" in label else ("met" if ms(seconds) <= TARGET_MS else "MISSED")
                print(f"{label:44} {ms(seconds):8.1f} {ms(seconds, 90):8.1f}  {verdict}")
            shared = [ms(s) for label, s in figures.items() if "replica" in label]
            print(f"shared / single p50 ratio: {max(shared) / baseline:.2f}")
            ok, took = concurrent_starts([g.url for g in replicas], 30)
            print(f"\n30 concurrent starts spread over both replicas: {ok}/30 succeeded in {took:.1f} s "
                  f"({'met' if ok == 30 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
