"""Where a kernel's `1+1` round trip goes: py-spy on a kernel container while raw jupyter_client runs `1+1`.

``python -m bench.kernel_profile [--stock] [--seconds S] [--image IMAGE]``: starts one kernel container of the
image (JupyCell's kernel, or with ``--stock`` stock ipykernel from the same image), attaches ``py-spy record
--threads --idle`` from the host to the kernel's process (no capability is needed inside the container), runs
``1+1`` back to back, and prints milliseconds per execute by bucket for the main thread, and the busy time of every
other thread. docs/benchmarks.md ("The kernel") shows a stock and a JupyCell split made with it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import docker

from bench.kernel_floor import STOCK
from bench.pyspy import PySpy
from bench.raw_floor import RawFloor

#: Main-thread buckets, first match wins: (bucket, substrings any of which the ";"-joined stack contains).
MAIN_BUCKETS = [
    ("stdout/stderr flush round trips to the IOPub thread", ("OutStream.flush", "QuickFlushOutStream.flush")),
    ("Kernel._execute_sleep before the reply", ("kernelbase.py:908",)),
    (
        "IOPub sends (stock: IOPub-thread wake-ups)",
        ("BackgroundSocket.send", "_publish_status ", "IOPubThread.schedule"),
    ),
    ("IPython: displayhook", ("DisplayHook.__call__",)),
    ("IPython: transform + top-level await check", ("transform_cell", "should_run_async")),
    ("IPython: history", ("store_inputs",)),
    ("IPython: compile, run, events", ("run_cell",)),
    ("ipykernel: reply (build, sign, send)", ("Session.send", "ZMQStream.flush")),
    ("ipykernel: dispatch and the rest of execute_request", ("dispatch_shell", "execute_request", "shell_main")),
]
_IDLE = ("select (selectors", "poll (selectors", "wait (threading", "_wait_for_tstate_lock", "poll (zmq")
_BLOCKED_FOREVER = ("_watch_pipe_fd", "Heartbeat")  # threads parked in a blocking C call that py-spy sees as busy


def split(raw: Path, ms_per_execute: float) -> list[str]:
    """Milliseconds per execute by bucket, from py-spy's raw (collapsed) output."""
    main: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"thread \(\d+\): ", "", frames[0])
        joined = ";".join(frames)
        if "MainThread" in thread:
            if any(k in frames[-1] for k in _IDLE[:2]):
                bucket = "waiting for the next request (event loop idle)"
            else:
                bucket = next((name for name, keys in MAIN_BUCKETS if any(k in joined for k in keys)), "other")
            main[bucket] += int(count)
        elif not any(k in frames[-1] for k in _IDLE) and not any(b in thread for b in _BLOCKED_FOREVER):
            others[thread] += int(count)
    total = sum(main.values()) or 1
    lines = [f"main thread, ms per execute (of {ms_per_execute:.2f}):"]
    lines += [f"  {n / total * ms_per_execute:6.2f} ms  {bucket}" for bucket, n in main.most_common()]
    lines.append("other threads, busy ms per execute:")
    lines += [f"  {n / total * ms_per_execute:6.2f} ms  {thread}" for thread, n in others.most_common()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_profile", description=__doc__)
    parser.add_argument("--image", default="jupycell-sandbox:latest")
    parser.add_argument("--stock", action="store_true", help="profile stock ipykernel (same image, unconfigured)")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    floor = RawFloor(args.image)
    out = Path(tempfile.mkdtemp(prefix="jck-")) / "kernel.raw"
    try:
        kernel, _ = floor.start(STOCK if args.stock else None)
        for _ in range(50):
            kernel.execute("1+1")
        client = docker.APIClient()
        init_pid = client.inspect_container(kernel.container.id)["State"]["Pid"]  # the container's init (tini)
        client.close()
        kernel_pid = int(subprocess.check_output(["pgrep", "-P", str(init_pid)]).split()[0])
        spy = PySpy(kernel_pid, out, rate=500, extra=("--threads", "--idle"))
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < args.seconds:
            kernel.execute("1+1")
            count += 1
        elapsed = time.perf_counter() - began
        spy.stop()
        print(f"{count} executes in {elapsed:.1f} s: {elapsed / count * 1e3:.2f} ms each")
        print("\n".join(split(out, elapsed / count * 1e3)))
    finally:
        floor.close()


if __name__ == "__main__":
    main()
