"""Packages on demand: how long a ``%pip install`` cell takes, against a plain ``pip install`` on the host.

Starts its own gateway (own, empty wheel cache), then for each package:

- first fetch: a ``%pip install PKG`` cell on a fresh kernel with the cache emptied before (helper container,
  index, download, install in the kernel), ``REPEATS`` times;
- plain pip on the host, same run, same index: ``pip install --no-cache-dir --target <tmp> PKG`` with no pip
  configuration but the CA bundle (so no local wheel directory helps it), ``REPEATS`` times;
- cached: a ``%pip install PKG`` cell on a fresh kernel once the wheels are cached, ``REPEATS`` times.

Prints medians (and minimums: the machine may be shared) and the ratio of the medians, first fetch / host pip.
Targets (issue 13): cached <= 2 s; ratio <= 1.5.

Usage: ``python bench/packages.py [PKG ...] [--repeats N]`` (default: tabulate cffi, 3), or ``make bench-packages``.
Kernels run under ``JUPYCELL_RUNTIME`` and ``JUPYCELL_SANDBOX_IMAGE`` as set in the environment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.packages.settings import PackageSettings  # noqa: E402
from testing.harness import Api, GatewayProcess, remove_instance_containers  # noqa: E402


def cell_seconds(api: Api, package: str) -> float:
    """Time of one ``%pip install`` cell run (HTTP round trip) on a fresh kernel; the kernel is shut down."""
    kernel = api.start()
    try:
        api.add(kernel, 1, f"%pip install {package}")
        started = time.perf_counter()
        response = api.run(kernel, 1)
        elapsed = time.perf_counter() - started
        result = response.json()
        if result.get("status") != "ok":
            raise RuntimeError(f"%pip install {package} failed: {result}")
        return elapsed
    finally:
        api.shutdown(kernel)


def host_pip_seconds(package: str, index_url: str, ca_bundle: Path | None) -> float:
    with tempfile.TemporaryDirectory(prefix="jcbench-pip-") as target:
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-cache-dir", "--disable-pip-version-check"]
        command += ["--target", target, "--index-url", index_url, package]
        if ca_bundle is not None:
            command += ["--cert", str(ca_bundle)]
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        env = {k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT")}
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        return time.perf_counter() - started


def empty_cache(packages_dir: Path) -> None:
    for name in ("wheels", "resolutions"):
        directory = packages_dir / "cache" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", default=["tabulate", "cffi"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = PackageSettings()
    index_url, ca_bundle = config.index_url(), config.ca_bundle()
    root = Path(tempfile.mkdtemp(prefix="jcb-"))
    packages_dir = root / "packages"
    gateway = GatewayProcess(root / "k", packages_dir=str(packages_dir), mem_limit_mb=1024).start()
    api = Api(gateway.url, timeout=600)
    rows = []
    try:
        api.execute(api.start(), "1")  # warm up the engine's image cache
        for package in args.packages:
            first, host, cached = [], [], []
            for _ in range(args.repeats):
                empty_cache(packages_dir)
                first.append(cell_seconds(api, package))
                host.append(host_pip_seconds(package, index_url, ca_bundle))
            for _ in range(args.repeats):
                cached.append(cell_seconds(api, package))
            rows.append((package, cached, first, host))
    finally:
        api.close()
        gateway.stop()
        remove_instance_containers(gateway.instance)
        shutil.rmtree(root, ignore_errors=True)
    runtime = os.environ.get("JUPYCELL_RUNTIME", "runc")
    print(f"\npackages on demand ({runtime}, index {index_url}, median [min] of {args.repeats})")
    print(f"{'package':<10} {'cached %pip cell':>19} {'first fetch cell':>19} {'host pip install':>19} {'ratio':>6}")
    for package, cached, first, host in rows:
        cells = [f"{statistics.median(t):6.2f} s [{min(t):5.2f}]" for t in (cached, first, host)]
        ratio = statistics.median(first) / statistics.median(host)
        print(f"{package:<10} {cells[0]:>19} {cells[1]:>19} {cells[2]:>19} {ratio:>5.2f}x")
    cached_ok = all(statistics.median(cached) <= 2 for _, cached, _, _ in rows)
    ratio_ok = all(statistics.median(first) / statistics.median(host) <= 1.5 for _, _, first, host in rows)
    print(
        f"targets: cached <= 2 s: {'met' if cached_ok else 'MISSED'}; "
        f"first fetch within 1.5x of host pip: {'met' if ratio_ok else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
