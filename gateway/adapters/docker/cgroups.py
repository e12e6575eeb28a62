"""What a kernel container uses, read from its cgroup: memory (now and peak), CPU seconds, processes.

Reads the engine host's cgroup file system (``JUPYCELL_CGROUP_ROOT``, default ``/sys/fs/cgroup``): cgroup v1 as
dockerd 20.10 lays it out (``memory/docker/<id>``, ``cpuacct/docker/<id>``, ``pids/docker/<id>``) and cgroup v2
(``system.slice/docker-<id>.scope`` or ``docker/<id>``). Where the container's cgroup is not visible (a gateway in a
container without the host's cgroup mounted), every reading is ``None``: usage is best effort, never an error.

Per-run peak memory: at a run's start the peak is reset (v1: writing to ``memory.max_usage_in_bytes``; v2:
writing to ``memory.peak``, Linux 6.12+) and read at its end; where it cannot be reset the peak since the container
started is reported and ``peak_scope`` says ``container``. The files are served from the kernel's memory: a run's
``begin_run``/``end_run`` take microseconds and are called on the event loop; ``snapshot`` runs in a thread. A
container's cgroup directory is looked up once (a run's start and end then cost only the reads and the write), and
files are read with ``os.read``, without Python's buffered text I/O (issue 15: a few syscalls less per file).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    memory: Path
    cpu: Path
    pids: Path
    v2: bool
    #: The files every run reads or writes, as strings made once (no path joins per run).
    cpu_file: str = field(init=False)
    peak_file: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpu_file", str(self.cpu / ("cpu.stat" if self.v2 else "cpuacct.usage")))
        object.__setattr__(
            self, "peak_file", str(self.memory / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes"))
        )


@dataclass(frozen=True)
class RunMark:
    """What a run's start left to compare its end with."""

    container_id: str
    cpu_seconds: float | None
    peak_reset: bool
    paths: Paths | None = None


_WRITE = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


class KeptFiles:
    """The per-run cgroup files, kept open: reading one again is a ``pread`` at offset 0 (cgroupfs makes the text
    afresh for each read from the start), not an open, a read and a close. With 50 kernels running, an ``open`` of a
    cgroup file took ~90 us on the event loop (issue 15). At most ``LIMIT`` files stay open (the oldest are closed
    first); the caller closes a container's files once it is gone (``close_matching``), so a removed cgroup is not
    kept alive by an open file."""

    LIMIT = 512

    def __init__(self) -> None:
        self._fds: OrderedDict[tuple[str, int], int] = OrderedDict()

    def read(self, path: str) -> str:
        """The file's text ("" if it cannot be read)."""
        fd = self._fd(path, _READ)
        if fd is None:
            return ""
        try:
            data = os.pread(fd, 65536, 0)
            while len(data) % 65536 == 0 and data and (more := os.pread(fd, 65536, len(data))):
                data += more
            return data.decode(errors="replace")
        except OSError:
            self._close((path, _READ))
            return ""

    def write(self, path: str, data: bytes) -> bool:
        fd = self._fd(path, _WRITE)
        if fd is None:
            return False
        try:
            os.pwrite(fd, data, 0)
            return True
        except OSError:
            self._close((path, _WRITE))
            return False

    def close_matching(self, text: str) -> None:
        """Close every kept file whose path contains ``text`` (a container id)."""
        for key in [key for key in self._fds if text in key[0]]:
            self._close(key)

    def _fd(self, path: str, flags: int) -> int | None:
        key = (path, flags)
        if (fd := self._fds.get(key)) is not None:
            self._fds.move_to_end(key)
            return fd
        try:
            fd = os.open(path, flags)
        except OSError:
            return None
        self._fds[key] = fd
        while len(self._fds) > self.LIMIT:
            self._close(next(iter(self._fds)))
        return fd

    def _close(self, key: tuple[str, int]) -> None:
        if (fd := self._fds.pop(key, None)) is not None:
            os.close(fd)


def _read(path: Path | str) -> str:
    """The file's text ("" if it cannot be read); cgroup files are small, but a longer one is read to its end."""
    try:
        fd = os.open(path, _READ)
    except OSError:
        return ""
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def _number(path: Path | str, read: Callable[[str], str] = _read) -> int | None:
    text = read(str(path)).strip()
    return int(text) if text.isdigit() else None


class CgroupReader:
    #: Container directories remembered (found ones only); past this many the memory starts afresh.
    MAX_REMEMBERED = 4096

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root
        self._found: dict[str, Paths] = {}
        self._kept = KeptFiles()

    def paths(self, container_id: str) -> Paths | None:
        """The container's cgroup directories, or None where none is visible (looked up once per container)."""
        if (known := self._found.get(container_id)) is not None:
            return known
        found = self._lookup(container_id)
        if found is not None:
            if len(self._found) >= self.MAX_REMEMBERED:
                self._found.clear()
            self._found[container_id] = found
        return found

    def _lookup(self, container_id: str) -> Paths | None:
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

    def cpu_seconds(self, paths: Paths, read: Callable[[str], str] = _read) -> float | None:
        if paths.v2:
            for line in read(paths.cpu_file).splitlines():
                name, _, value = line.partition(" ")
                if name == "usage_usec":
                    return int(value) / 1e6
            return None
        nanoseconds = _number(paths.cpu_file, read)
        return None if nanoseconds is None else nanoseconds / 1e9

    def memory_bytes(self, paths: Paths) -> int | None:
        return _number(paths.memory / ("memory.current" if paths.v2 else "memory.usage_in_bytes"))

    def peak_memory_bytes(self, paths: Paths, read: Callable[[str], str] = _read) -> int | None:
        return _number(paths.peak_file, read)

    def reset_peak(self, paths: Paths) -> bool:
        return self._kept.write(paths.peak_file, b"0")

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
        cpu = self.cpu_seconds(paths, self._kept.read)
        if cpu is None:  # its directory went (the container was replaced or removed): look it up afresh
            self.forget(container_id)
            if (paths := self.paths(container_id)) is None:
                return None
            cpu = self.cpu_seconds(paths, self._kept.read)
        return RunMark(container_id, cpu, self.reset_peak(paths), paths)

    def end_run(self, mark: RunMark | None) -> dict[str, object] | None:
        """``{"peak_memory_bytes", "cpu_seconds", "peak_scope"}`` for the run ``mark`` began, or None (also when the
        container's cgroup is gone by then)."""
        if mark is None or (paths := mark.paths or self.paths(mark.container_id)) is None:
            return None
        cpu = self.cpu_seconds(paths, self._kept.read)
        peak = self.peak_memory_bytes(paths, self._kept.read)
        if cpu is None and peak is None:  # the directory went during the run
            self.forget(mark.container_id)
            return None
        return {
            "peak_memory_bytes": peak,
            "cpu_seconds": None if cpu is None or mark.cpu_seconds is None else round(cpu - mark.cpu_seconds, 6),
            "peak_scope": "run" if mark.peak_reset else "container",
        }

    def forget(self, container_id: str) -> None:
        """The container is gone or no longer the kernel's: close its kept files, drop its directory."""
        self._found.pop(container_id, None)
        self._kept.close_matching(container_id)

    def snapshot(self, container_id: str) -> dict[str, int | float | None] | None:
        """The container's present use: memory (now, peak), CPU seconds since start, processes, tmpfs bytes."""
        paths = self._lookup(container_id)  # not remembered: a snapshot (in a thread) sees a removed container go
        if paths is None:
            return None
        return {
            "memory_bytes": self.memory_bytes(paths),
            "peak_memory_bytes": self.peak_memory_bytes(paths),
            "cpu_seconds": self.cpu_seconds(paths),
            "pids": _number(paths.pids / "pids.current"),
            "tmpfs_bytes": self.tmpfs_bytes(paths),
        }
