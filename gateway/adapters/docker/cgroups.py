"""What a kernel container uses, read from its cgroup: memory (now and peak), CPU seconds, processes.

Reads the engine host's cgroup file system (``JUPYCELL_CGROUP_ROOT``, default ``/sys/fs/cgroup``): cgroup v1 as
dockerd 20.10 lays it out (``memory/docker/<id>``, ``cpuacct/docker/<id>``, ``pids/docker/<id>``) and cgroup v2
(``system.slice/docker-<id>.scope`` or ``docker/<id>``). Where the container's cgroup is not visible (a gateway in a
container without the host's cgroup mounted), every reading is ``None``: usage is best effort, never an error.

Per-run peak memory: at a run's start the peak is reset (v1: writing to ``memory.max_usage_in_bytes``; v2:
writing to ``memory.peak``, Linux 6.12+) and read at its end; where it cannot be reset the peak since the container
started is reported and ``peak_scope`` says ``container``. The files are served from the kernel's memory: a run's
``begin_run``/``end_run`` take microseconds and are called on the event loop; ``snapshot`` runs in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunMark:
    """What a run's start left to compare its end with."""

    container_id: str
    cpu_seconds: float | None
    peak_reset: bool


@dataclass(frozen=True)
class Paths:
    memory: Path
    cpu: Path
    pids: Path
    v2: bool


class CgroupReader:
    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root

    def paths(self, container_id: str) -> Paths | None:
        if not container_id or "/" in container_id or container_id.startswith("."):
            return None
        v1 = Paths(
            self.root / "memory/docker" / container_id,
            self.root / "cpuacct/docker" / container_id,
            self.root / "pids/docker" / container_id,
            v2=False,
        )
        if v1.memory.is_dir():
            return v1
        for v2 in (self.root / "system.slice" / f"docker-{container_id}.scope", self.root / "docker" / container_id):
            if (v2 / "memory.current").exists():
                return Paths(v2, v2, v2, v2=True)
        return None

    # --- readings -----------------------------------------------------------------------------------------

    def cpu_seconds(self, paths: Paths) -> float | None:
        if paths.v2:
            for line in _read(paths.cpu / "cpu.stat").splitlines():
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) / 1e6
            return None
        nanoseconds = _number(paths.cpu / "cpuacct.usage")
        return None if nanoseconds is None else nanoseconds / 1e9

    def memory_bytes(self, paths: Paths) -> int | None:
        return _number(paths.memory / ("memory.current" if paths.v2 else "memory.usage_in_bytes"))

    def peak_memory_bytes(self, paths: Paths) -> int | None:
        return _number(paths.memory / ("memory.peak" if paths.v2 else "memory.max_usage_in_bytes"))

    def reset_peak(self, paths: Paths) -> bool:
        try:
            (paths.memory / ("memory.peak" if paths.v2 else "memory.max_usage_in_bytes")).write_text("0")
            return True
        except OSError:
            return False

    def tmpfs_bytes(self, paths: Paths) -> int | None:
        """Memory held by the container's tmpfs files (``shmem`` in memory.stat: tmpfs pages are charged there)."""
        for line in _read(paths.memory / "memory.stat").splitlines():
            name, _, value = line.partition(" ")
            if name in ("shmem", "total_shmem") and value.strip().isdigit():
                return int(value)
        return None

    # --- a run ----------------------------------------------------------------------------------------------

    def begin_run(self, container_id: str) -> RunMark | None:
        paths = self.paths(container_id)
        if paths is None:
            return None
        return RunMark(container_id, self.cpu_seconds(paths), self.reset_peak(paths))

    def end_run(self, mark: RunMark | None) -> dict[str, object] | None:
        """``{"peak_memory_bytes", "cpu_seconds", "peak_scope"}`` for the run ``mark`` began, or None."""
        if mark is None or (paths := self.paths(mark.container_id)) is None:
            return None
        cpu = self.cpu_seconds(paths)
        return {
            "peak_memory_bytes": self.peak_memory_bytes(paths),
            "cpu_seconds": None if cpu is None or mark.cpu_seconds is None else round(cpu - mark.cpu_seconds, 6),
            "peak_scope": "run" if mark.peak_reset else "container",
        }

    def snapshot(self, container_id: str) -> dict[str, int | float | None] | None:
        """The container's present use: memory (now, peak), CPU seconds since start, processes, tmpfs bytes."""
        paths = self.paths(container_id)
        if paths is None:
            return None
        return {
            "memory_bytes": self.memory_bytes(paths),
            "peak_memory_bytes": self.peak_memory_bytes(paths),
            "cpu_seconds": self.cpu_seconds(paths),
            "pids": _number(paths.pids / "pids.current"),
            "tmpfs_bytes": self.tmpfs_bytes(paths),
        }


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _number(path: Path) -> int | None:
    text = _read(path).strip()
    return int(text) if text.isdigit() else None
