"""The kernel's own `1+1` round trip: JupyCell's sandbox kernel against stock ipykernel, same image, same run.

Both are containers of the same sandbox image with the gateway's hardened flags (``bench.raw_floor``); the stock one
is started with ``JUPYCELL_KERNEL_LAUNCHER=stock`` (``python -m ipykernel_launcher``, no configuration at all), so
the ipykernel, IPython and pyzmq versions are the same by construction. Requests are interleaved one by one across
the kernels, so every kernel sees the same machine; besides wall time, the CPU time each container spent per
execute is read from its cgroup (a figure a busy machine disturbs far less).

``python -m bench.kernel_floor [--switches] [--favour]`` runs it alone; ``--switches`` adds one kernel per switch of
``JupyCellKernelApp`` flipped, which is how each change is measured; ``--favour`` runs the kernels at the highest CPU
weight and the client at nice -20 (as root), which approximates a quiet machine on a shared one.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.raw_floor import RawFloor, RawKernel
from bench.stats import p50, percentile

STOCK = {"JUPYCELL_KERNEL_LAUNCHER": "stock"}
SWITCHES = (
    "quick_flush",
    "direct_iopub",
    "coalesce_iopub",
    "no_execute_sleep",
    "memory_history",
    "freeze_gc",
    "subshells",
    "lean_session",
    "fast_send",
    "lean_run_cell",
    "cached_signatures",
    "quiet_logging",
)


@dataclass
class Variant:
    name: str
    environment: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    kernel: RawKernel | None = None
    samples: list[float] = field(default_factory=list)
    cpu_per_execute: float | None = None


def variants(switches: bool | list[str]) -> list[Variant]:
    """Stock and JupyCell; with ``switches`` also one kernel per switch flipped: every switch (True), or each
    entry named, where an entry "a,b" flips several switches in one kernel."""
    found = [Variant("stock ipykernel", STOCK), Variant("JupyCell kernel")]
    if switches:
        for entry in SWITCHES if switches is True else switches:
            flips = [(name, "True" if name == "subshells" else "False") for name in entry.split(",")]
            found.append(
                Variant(
                    "JupyCell, " + ", ".join(f"{name}={value}" for name, value in flips),
                    command=[f"--JupyCellKernelApp.{name}={value}" for name, value in flips],
                )
            )
    return found


def switch_list(text: str) -> str:
    """``--switch`` argument: one switch, or several separated by commas (flipped together)."""
    unknown = [name for name in text.split(",") if name not in SWITCHES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown switch(es) {unknown}; known: {', '.join(SWITCHES)}")
    return text


def cgroup_cpu_seconds(container_id: str) -> float | None:
    """CPU time used by a container so far (cgroup v1 cpuacct or v2 cpu.stat), None where it cannot be read."""
    v1 = Path("/sys/fs/cgroup/cpuacct/docker") / container_id / "cpuacct.usage"
    if v1.exists():
        return int(v1.read_text()) / 1e9
    v2 = Path("/sys/fs/cgroup/system.slice") / f"docker-{container_id}.scope" / "cpu.stat"
    if v2.exists():
        for line in v2.read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
    return None


def favour(kernel: RawKernel) -> None:
    """Give a kernel container the highest CPU weight (cgroup shares): with the client at nice -20, the pair runs
    much as on a quiet machine even when the machine is shared (``--favour``)."""
    kernel.container.update(cpu_shares=262144)


def measure(
    floor: RawFloor, found: list[Variant], executes: int, warmup: int = 30, code: str = "1+1", favoured: bool = False
) -> None:
    """Start every variant, then ``executes`` round trips each, interleaved one by one (rotating who goes first)."""
    for variant in found:
        variant.kernel, _ = floor.start(variant.environment, variant.command)
        if favoured:
            favour(variant.kernel)
    kernels = [v for v in found if v.kernel is not None]
    for variant in kernels:
        for _ in range(warmup):
            variant.kernel.execute(code)
    cpu_before = {v.name: cgroup_cpu_seconds(v.kernel.container.id) for v in kernels}
    for i in range(executes):
        shift = i % len(kernels)
        for variant in kernels[shift:] + kernels[:shift]:
            begin = time.perf_counter()
            variant.kernel.execute(code)
            variant.samples.append(time.perf_counter() - begin)
    for variant in kernels:
        before, after = cpu_before[variant.name], cgroup_cpu_seconds(variant.kernel.container.id)
        if before is not None and after is not None:
            # includes the warm-up-free rounds only; other kernels' requests cost this one nothing
            variant.cpu_per_execute = (after - before) / executes
    for variant in kernels:
        floor.stop(variant.kernel)
        variant.kernel = None


def first_executes(floor: RawFloor, found: list[Variant], starts: int) -> dict[str, list[float]]:
    """The first `1+1` of a fresh kernel (pre-warming's target), each variant started ``starts`` times."""
    firsts: dict[str, list[float]] = {v.name: [] for v in found}
    for _ in range(starts):
        for variant in found:
            kernel, _ = floor.start(variant.environment, variant.command)
            begin = time.perf_counter()
            kernel.execute("1+1")
            firsts[variant.name].append(time.perf_counter() - begin)
            floor.stop(kernel)
    return firsts


def report(found: list[Variant]) -> list[str]:
    stock = found[0]
    lines = [f"{'kernel':44s} {'p50':>9s} {'p99':>9s} {'speed-up':>9s} {'CPU/execute':>12s}"]
    for v in found:
        cpu = f"{v.cpu_per_execute * 1e3:9.2f} ms" if v.cpu_per_execute is not None else "—"
        lines.append(
            f"{v.name:44s} {p50(v.samples) * 1e3:6.2f} ms {percentile(v.samples, 99) * 1e3:6.2f} ms "
            f"{p50(stock.samples) / p50(v.samples):8.2f}x {cpu:>12s}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_floor", description=__doc__)
    parser.add_argument("--image", default=os.environ.get("JUPYCELL_SANDBOX_IMAGE", "jupycell-sandbox:latest"))
    parser.add_argument("--executes", type=int, default=500, help="round trips per kernel")
    parser.add_argument("--switches", action="store_true", help="also one kernel per switch turned off")
    parser.add_argument(
        "--switch",
        action="append",
        type=switch_list,
        default=[],
        help="also a kernel with this switch flipped, or these (comma-separated) together; repeatable",
    )
    parser.add_argument("--firsts", type=int, default=0, help="also time the first execute of N fresh kernels each")
    parser.add_argument(
        "--favour", action="store_true", help="kernels at the highest CPU weight, this client at nice -20 (root)"
    )
    args = parser.parse_args()
    if args.favour:
        os.nice(-20)
    floor = RawFloor(args.image)
    try:
        found = variants(args.switches or args.switch)
        measure(floor, found, args.executes, favoured=args.favour)
        print("\n".join(report(found)))
        if args.firsts:
            firsts = first_executes(floor, found[:2], args.firsts)
            for name, samples in firsts.items():
                print(f"first `1+1` of a fresh kernel, {name}: p50 {p50(samples) * 1e3:.1f} ms")
    finally:
        floor.close()


if __name__ == "__main__":
    main()
