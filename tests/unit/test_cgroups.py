"""Reading a container's use from cgroup files laid out as dockerd 20.10 does (v1) and as systemd does (v2)."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.adapters.docker.cgroups import CgroupReader, KeptFiles

CID = "a" * 64


def v1(root: Path, usage: int, peak: int, cpu_ns: int) -> None:
    for controller in ("memory", "cpuacct", "pids"):
        (root / controller / "docker" / CID).mkdir(parents=True, exist_ok=True)
    memory = root / "memory/docker" / CID
    (memory / "memory.usage_in_bytes").write_text(f"{usage}\n")
    (memory / "memory.max_usage_in_bytes").write_text(f"{peak}\n")
    (memory / "memory.stat").write_text("cache 10\nshmem 4096\nrss 5\n")
    (root / "cpuacct/docker" / CID / "cpuacct.usage").write_text(f"{cpu_ns}\n")
    (root / "pids/docker" / CID / "pids.current").write_text("7\n")


def test_v1_run_usage_and_snapshot(tmp_path: Path) -> None:
    reader = CgroupReader(tmp_path)
    v1(tmp_path, usage=100, peak=900, cpu_ns=2_000_000_000)
    mark = reader.begin_run(CID)
    assert mark is not None and mark.peak_reset
    # writing resets the peak (the kernel sets it to the present usage; a plain file just holds what we wrote)
    assert (tmp_path / "memory/docker" / CID / "memory.max_usage_in_bytes").read_text() == "0"
    v1(tmp_path, usage=150, peak=5000, cpu_ns=3_500_000_000)
    assert reader.end_run(mark) == {"peak_memory_bytes": 5000, "cpu_seconds": 1.5, "peak_scope": "run"}
    assert reader.snapshot(CID) == {
        "memory_bytes": 150,
        "peak_memory_bytes": 5000,
        "cpu_seconds": 3.5,
        "pids": 7,
        "tmpfs_bytes": 4096,
    }


def test_v2_layout(tmp_path: Path) -> None:
    scope = tmp_path / "system.slice" / f"docker-{CID}.scope"
    scope.mkdir(parents=True)
    (scope / "memory.current").write_text("300\n")
    (scope / "memory.peak").write_text("800\n")
    (scope / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 1\n")
    (scope / "pids.current").write_text("3\n")
    (scope / "memory.stat").write_text("anon 1\nshmem 12\n")
    snapshot = CgroupReader(tmp_path).snapshot(CID)
    assert snapshot == {"memory_bytes": 300, "peak_memory_bytes": 800, "cpu_seconds": 2.5, "pids": 3, "tmpfs_bytes": 12}


def test_no_visible_cgroup_reads_as_none(tmp_path: Path) -> None:
    reader = CgroupReader(tmp_path)
    assert reader.begin_run(CID) is None and reader.end_run(None) is None and reader.snapshot(CID) is None
    assert reader.snapshot("../../etc") is None and reader.snapshot("") is None


def test_a_directory_that_went_reads_as_none_and_is_looked_up_again(tmp_path: Path) -> None:
    reader = CgroupReader(tmp_path)
    v1(tmp_path, usage=100, peak=900, cpu_ns=1_000_000_000)
    mark = reader.begin_run(CID)
    assert mark is not None
    shutil.rmtree(tmp_path / "memory"), shutil.rmtree(tmp_path / "cpuacct")  # the container was removed mid-run
    # cgroupfs answers ENODEV on the files kept open; a plain directory keeps the removed files readable, so the
    # observer's word that the container is gone is what closes them here
    reader.forget(CID)
    assert reader.end_run(mark) is None and reader.begin_run(CID) is None and reader.snapshot(CID) is None
    v1(tmp_path, usage=100, peak=900, cpu_ns=1_000_000_000)  # a container of that id again
    assert reader.begin_run(CID) is not None


def test_run_files_stay_open_are_read_afresh_and_are_closed_when_the_container_goes(tmp_path: Path) -> None:
    reader = CgroupReader(tmp_path)
    v1(tmp_path, usage=100, peak=900, cpu_ns=1_000_000_000)
    cpu_file = tmp_path / "cpuacct/docker" / CID / "cpuacct.usage"
    before = open_files()
    for cpu_ns in (2_000_000_000, 2_500_000_000):  # the same files, kept open, show each new value
        cpu_file.write_text(f"{cpu_ns}\n")
        mark = reader.begin_run(CID)
        cpu_file.write_text(f"{cpu_ns + 1_500_000_000}\n")
        assert reader.end_run(mark) == {"peak_memory_bytes": 0, "cpu_seconds": 1.5, "peak_scope": "run"}
    assert len(open_files() - before) == 3  # the CPU and peak files read, the peak file written
    reader.forget(CID)
    assert open_files() == before


def test_at_most_limit_run_files_stay_open(tmp_path: Path) -> None:
    files = KeptFiles()
    files.LIMIT = 4
    before = open_files()
    for number in range(10):
        (tmp_path / str(number)).write_text(f"{number}\n")
        assert files.read(str(tmp_path / str(number))) == f"{number}\n"
    assert len(open_files() - before) == 4
    files.close_matching(str(tmp_path))
    assert open_files() == before


def open_files() -> set[str]:
    return {entry.name for entry in Path("/proc/self/fd").iterdir()}
