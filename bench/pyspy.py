"""Optional py-spy profile of the gateway during the `1+1` phase (``--profile FILE``): where its time goes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


class PySpy:
    """``py-spy record`` (raw, collapsed stacks) attached to a process; stop() ends it and writes the file."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        executable = Path(sys.executable).with_name("py-spy")
        if not executable.exists():
            raise RuntimeError(f"{executable} not found: `bench/.venv/bin/pip install py-spy`")
        self.out = out
        self.process = subprocess.Popen(
            [str(executable), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", str(rate), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # attached

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


def summarize(path: Path, top: int = 12) -> list[str]:
    """The functions most samples were in (inclusive), with their share of the gateway's busy samples."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and frames[-1].startswith(("Runner.run", "run_forever", "_run_once")):
            continue  # the loop waiting for work: idle
        total += n
        for frame in dict.fromkeys(f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1] for f in frames):
            inclusive[frame] += n
    if not total:
        return ["(no busy samples)"]
    interesting = [
        (frame, n)
        for frame, n in inclusive.most_common()
        if any(key in frame for key in ("gateway", "client.py", "session.py", "routing.py", "httptools", "socket.py"))
    ]
    return [f"{n / total * 100:5.1f}%  {frame.rstrip(')')}" for frame, n in interesting[:top]]
