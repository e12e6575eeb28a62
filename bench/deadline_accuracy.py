"""How long after a run's deadline the HTTP response comes back.

Starts its own gateway (real containers), then for each case runs a cell with ``timeout`` set and measures the
wall time of ``POST /cell`` minus the deadline:

- ``while True: pass`` - interrupted at the deadline, kernel kept;
- a loop that ignores SIGINT - interrupted, still busy after ``interrupt_grace``, container replaced (the reply
  does not wait for the new container; the kernel's next run does). Between runs it waits for the kernel to be idle.

Usage: ``python bench/deadline_accuracy.py [--runs 5] [--deadline 1.0] [--grace 2.0]`` (or ``make bench-deadlines``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.harness import Api, GatewayProcess, remove_instance_containers  # noqa: E402

CASES = {
    "while True (interrupt)": "while True: pass",
    "SIGINT ignored (replace)": (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.01)"
    ),
}


def measure(api: Api, kernel: int, code: str, deadline: float, runs: int) -> tuple[list[float], set[str]]:
    late, statuses = [], set()
    for run in range(runs):
        number = 1000 + run
        api.add(kernel, number, code)
        started = time.monotonic()
        response = api.run(kernel, number, timeout=deadline)
        late.append(time.monotonic() - started - deadline)
        body = response.json()
        statuses.add(f"{body['status']}, state kept: {body['kernel_state_kept']}")
        api.cell(kernel, "delete", number)
        while api.http.get(f"/kernels/{kernel}").json()["state"] != "idle":  # a replacement finishes after the reply
            time.sleep(0.05)
    return late, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=1.0, help="the run's timeout, seconds")
    parser.add_argument("--grace", type=float, default=2.0, help="the gateway's interrupt_grace, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jc-") as root:
        gateway = GatewayProcess(Path(root) / "k", interrupt_grace=args.grace).start()
        api = Api(gateway.url)
        try:
            kernel = api.start()
            print(f"deadline {args.deadline:g} s, interrupt_grace {args.grace:g} s, {args.runs} runs per case")
            print(f"{'case':28} {'late by (s): min':>16} {'median':>8} {'max':>8}  outcome")
            for name, code in CASES.items():
                late, statuses = measure(api, kernel, code, args.deadline, args.runs)
                print(
                    f"{name:28} {min(late):16.3f} {statistics.median(late):8.3f} {max(late):8.3f}  "
                    + "; ".join(sorted(statuses))
                )
        finally:
            api.close()
            gateway.stop()
            remove_instance_containers(gateway.instance)


if __name__ == "__main__":
    main()
