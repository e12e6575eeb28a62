"""Optional py-spy profile of the gateway during the `1+1` phase (``--profile FILE``): where its time goes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


class PySpy:
    """``py-spy record`` (raw, collapsed stacks) attached to a process; stop() ends it and writes the file."""

    def __init__(self, pid: int, out: Path, rate: int = 250, extra: tuple[str, ...] = ()) -> None:
        executable = Path(sys.executable).with_name("py-spy")
        if not executable.exists():
            raise RuntimeError(f"{executable} not found: `bench/.venv/bin/pip install py-spy`")
        self.out = out
        self.process = subprocess.Popen(
            [str(executable), "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", str(rate), "--nonblocking"]
            + list(extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)  # attached

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


#: Where a sample's innermost frames are, first match wins: (bucket, substrings of "function (file").
BUCKETS = [
    ("jupyter_client Session: sign/verify, (de)serialise messages", ("session.py", "jsonutil.py", "hmac.py", "orjson")),
    ("pyzmq: socket send/recv/poll (zmq.asyncio)", ("zmq/",)),
    ("jupyter_client channels/client plumbing", ("jupyter_client/", "jupyter_core/")),
    ("gateway: kernel client, manager, outputs", ("gateway/kernels", "gateway/notebook")),
    ("gateway: routes, security middleware, views", ("gateway/",)),
    ("pydantic: validate/serialise", ("pydantic",)),
    ("FastAPI/Starlette: routing, dependencies, responses", ("fastapi/", "starlette/")),
    ("uvicorn/httptools: HTTP parsing and writing", ("uvicorn/", "httptools")),
    ("asyncio machinery", ("asyncio/",)),
]


def stacks(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread, frames outermost first, sample count) of each line of py-spy's raw output (``--threads``: the
    thread is the first frame; without it, "")."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        thread = ""
        if frames and frames[0].startswith("thread ("):
            thread = re.sub(r"thread \(0?x?[0-9a-fA-F]+\): ", "", frames.pop(0)).strip('"')
        if frames:
            yield thread, frames, int(count)


def summarize(path: Path) -> list[str]:
    """Busy samples of the gateway process by where their innermost known frame is (see ``BUCKETS``)."""
    shares: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[-1].startswith(("Runner.run", "run_forever", "_run_once")):
            continue  # the loop waiting for work: idle
        n = int(count)
        total += n
        for frame in reversed(frames):
            bucket = next((name for name, keys in BUCKETS if any(k in frame for k in keys)), None)
            if bucket is not None:
                shares[bucket] += n
                break
        else:
            shares["other"] += n
    if not total:
        return ["(no busy samples)"]
    return [f"{n / total * 100:5.1f}%  {bucket}" for bucket, n in shares.most_common()]
