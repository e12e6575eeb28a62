"""Process and machine helpers: free ports, RSS, container memory, load average, the machine's description."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def container_memory_mb(container_id: str) -> float | None:
    """Memory of a container as ``docker stats`` shows it (usage minus inactive page cache), cgroup v1 or v2;
    None if its cgroup is not where the engine's default cgroupfs layout puts it."""
    for base in (Path("/sys/fs/cgroup/memory/docker") / container_id, Path("/sys/fs/cgroup/system.slice")):
        if base.name != container_id:
            base = base / f"docker-{container_id}.scope"
        usage_file = base / "memory.usage_in_bytes"
        if not usage_file.exists():
            usage_file = base / "memory.current"
        if not usage_file.exists():
            continue
        usage = int(usage_file.read_text())
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
        inactive = int(stat.get("total_inactive_file", stat.get("inactive_file", 0)))
        return (usage - inactive) / 2**20
    return None


class LoadSampler:
    """Samples /proc/loadavg (1-minute) every second in a thread: how busy the shared machine was."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(float(Path("/proc/loadavg").read_text().split()[0]))
            self._stop.wait(1)

    def stop(self) -> str:
        self._stop.set()
        if not self.samples:
            return "n/a"
        return (
            f"1-min load average during the run: min {min(self.samples):.1f}, "
            f"mean {sum(self.samples) / len(self.samples):.1f}, max {max(self.samples):.1f} "
            f"(on {os.cpu_count()} CPUs)"
        )


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        engine = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        engine = "?"
    return (
        f"{os.cpu_count()} vCPU ({cpu}), {mem_gb:.0f} GiB RAM, Linux {platform.release()}, "
        f"Docker engine {engine}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
