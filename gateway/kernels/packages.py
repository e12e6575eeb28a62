"""``NoPackages``: the core without packages on demand (unit tests on fakes, or an app wired without them).

The real ``KernelPackages`` is ``gateway.packages.service.PackageService``, wired by ``gateway.main``.
"""

from __future__ import annotations

from typing import Any

from gateway.kernels.kernel import Kernel
from gateway.notebook.outputs import Output
from gateway.packages.errors import PackageNotAllowed


class NoPackages:
    """Nothing to fetch or reinstall; ``install`` is refused."""

    async def start_up(self, kernel_ids: set[int]) -> None:
        return None

    async def before_run(self, kernel: Kernel, code: str) -> Output | None:
        return None

    async def after_launch(self, kernel: Kernel) -> None:
        return None

    async def install(self, kernel: Kernel, requirements: list[str]) -> dict[str, Any]:
        raise PackageNotAllowed("Packages on demand are not available in this gateway.")

    def installed(self, kernel_id: int) -> dict[str, Any]:
        return {"requirements": [], "wheels": [], "bytes": 0}

    async def forget(self, kernel_id: int, sandbox_id: int | None = None) -> None:
        return None

    def close(self) -> None:
        return None
