"""Issue 11: how long after ``kill -9`` of a gateway replica its kernel is usable through another replica.

Starts two replicas (``a``, ``b``) of one instance on a fresh PostgreSQL database (the test server of
``scripts/ensure-postgres.sh``), and for each round: a kernel started on ``a`` defines ``x`` and starts a cell that
runs until interrupted; ``a`` is killed with SIGKILL; then ``print(x)`` is sent to ``b`` until it answers with the
same value (a 503 while ``a``'s lease has not expired yet is retried every 50 ms). Prints each time and the median,
with the lease used (default: the product's, 9 s). ``a`` is started again for the next round.

Usage: ``JUPYCELL_TEST_POSTGRES_URL=$(scripts/ensure-postgres.sh) python bench/replica_failover.py [--rounds 3]
[--lease 9]``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.harness import (  # noqa: E402
    HOLD_UNTIL_INTERRUPTED,
    Api,
    BackgroundRun,
    GatewayProcess,
    free_port,
    postgres_database,
    remove_instance_containers,
    stdout_of,
    unique_instance,
)


def replica(root: Path, instance: str, url: str, name: str, lease: float) -> GatewayProcess:
    port = free_port()
    return GatewayProcess(
        root / "k", instance=instance, listen_port=port, database_url=url, replica_id=name,
        replica_url=f"http://127.0.0.1:{port}", lease_seconds=lease, output_flush_interval=0.2,
    ).start()  # fmt: skip


def usable_after_kill(a: GatewayProcess, b: Api) -> float:
    api = Api(a.url)
    kernel = api.start()
    expected = stdout_of(api.execute(kernel, "import random\nx = random.random()\nprint(x)"))
    api.add(kernel, 2, HOLD_UNTIL_INTERRUPTED)
    BackgroundRun(api, kernel, 2).wait_for_output()
    a.stop(signal.SIGKILL)
    killed = time.monotonic()
    number = 3
    while True:
        b.add(kernel, number, "print(x)")
        response = b.run(kernel, number)
        if response.status_code == 200 and stdout_of(response.json()) == expected:
            return time.monotonic() - killed
        # 503: a is gone, its lease not over yet; 404: the add was refused, then b adopted the kernel
        if response.status_code not in (503, 404):
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
        number += 1
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease", type=float, default=9.0, help="JUPYCELL_LEASE_SECONDS")
    args = parser.parse_args()
    instance = unique_instance("failover")
    times = []
    with tempfile.TemporaryDirectory(prefix="jc-") as root, postgres_database() as url:
        b_process = replica(Path(root), instance, url, "b", args.lease)
        b = Api(b_process.url)
        try:
            for round_ in range(args.rounds):
                a = replica(Path(root), instance, url, f"a{round_}", args.lease)
                times.append(usable_after_kill(a, b))
                print(f"round {round_ + 1}: kill -9 of replica a -> kernel usable through b in {times[-1]:.2f} s")
        except BaseException:
            print(b_process.log()[-3000:])
            raise
        finally:
            b.close()
            b_process.stop()
            remove_instance_containers(instance)
    print(f"median {statistics.median(times):.2f} s over {len(times)} rounds (lease {args.lease:g} s)")


if __name__ == "__main__":
    main()
