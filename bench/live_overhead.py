"""What watching costs a run: ``1+1`` through ``POST /cell`` with nobody watching, and with an event stream open
(the live view's), interleaved in blocks on one kernel so both see the same machine. With ``--baseline DIR`` (a
checkout of the code before issue 14) the same runs also go to a gateway started from that tree, interleaved too.

Usage: ``python bench/live_overhead.py [runs=300] [--baseline DIR]``. Prints p50/p95 per case and ratios.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.harness import GatewayProcess, remove_instance_containers  # noqa: E402

BLOCK = 20


def prepare(url: str) -> tuple[httpx.Client, int]:
    http = httpx.Client(base_url=url, timeout=120)
    kernel = http.post("/start").json()["kernel_id"]
    http.post("/cell", json={"kernel_id": kernel, "action": "add", "cell_number": 1, "code": "1+1"})
    for _ in range(5):  # warm-up
        http.post("/cell", json={"kernel_id": kernel, "action": "run", "cell_number": 1})
    return http, kernel


def run_block(http: httpx.Client, kernel: int, times: list[float]) -> None:
    for _ in range(BLOCK):
        t0 = time.perf_counter()
        http.post("/cell", json={"kernel_id": kernel, "action": "run", "cell_number": 1}).raise_for_status()
        times.append(time.perf_counter() - t0)


class Watcher:
    """An open event stream on the kernel, read in a thread (what a live view does)."""

    def __init__(self, url: str, kernel: int) -> None:
        self.events = 0
        self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, kernel), daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def _read(self, url: str, kernel: int) -> None:
        with httpx.stream("GET", f"{url}/kernels/{kernel}/events", timeout=None) as stream:
            for line in stream.iter_lines():
                self._ready.set()
                self.events += line.startswith("event:")
                if self._stop:
                    return

    def stop(self) -> None:
        self._stop = True


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 300
    baseline = sys.argv[sys.argv.index("--baseline") + 1] if "--baseline" in sys.argv else None
    with tempfile.TemporaryDirectory(prefix="jc-") as root:
        gateways = {"this": GatewayProcess(Path(root) / "k")}
        if baseline:
            gateways["baseline"] = GatewayProcess(Path(root) / "b")
            gateways["baseline"].env["PYTHONPATH"] = baseline
        try:
            for name, gateway in gateways.items():
                if name == "baseline":
                    import testing.harness as support

                    support.ROOT, saved = Path(baseline), support.ROOT
                    gateway.start()
                    support.ROOT = saved
                else:
                    gateway.start()
            clients = {name: prepare(g.url) for name, g in gateways.items()}
            times: dict[str, list[float]] = {"unwatched": [], "watched": []}
            times |= {"baseline": []} if baseline else {}
            http, kernel = clients["this"]

            def watched() -> None:
                watcher = Watcher(gateways["this"].url, kernel)
                run_block(http, kernel, times["watched"])
                watcher.stop()

            cases = [lambda: run_block(http, kernel, times["unwatched"]), watched]
            if baseline:
                cases.append(lambda: run_block(*clients["baseline"], times["baseline"]))
            for block in range(runs // BLOCK):
                for case in cases[block % len(cases) :] + cases[: block % len(cases)]:  # rotate the order
                    case()
            for name, values in times.items():
                values.sort()
                p50, p95 = statistics.median(values), values[int(len(values) * 0.95)]
                print(f"{name:>10}: n={len(values)} p50={p50 * 1000:.2f} ms p95={p95 * 1000:.2f} ms")
            p50 = {name: statistics.median(v) for name, v in times.items()}
            print(f"watched / unwatched p50: {p50['watched'] / p50['unwatched']:.2f}x")
            if baseline:
                print(f"unwatched / baseline p50: {p50['unwatched'] / p50['baseline']:.2f}x")
        finally:
            for gateway in gateways.values():
                gateway.stop()
                remove_instance_containers(gateway.instance)


if __name__ == "__main__":
    main()
