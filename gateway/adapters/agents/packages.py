"""``AgentPackageHost``: the ``PackageHost`` of the agents backend. The wheel cache, the fetch helper and a kernel's
wheel directory are on the kernel's node; each operation is a ``packages_*`` control request to that node's agent
(``gateway.agent.packages``), over the same authenticated channel as every other request and bounded in time like
them (a fetch: ``JUPYCELL_PACKAGE_FETCH_TIMEOUT`` and a margin for the helper's container).

The agent's answers are untrusted too: wheels are read with ``Wheel.from_json``, anything of the wrong shape is a
``PackageFetchFailed`` naming the node. A kernel's wheel directory goes with its container (the agent removes both),
so ``remove`` has nothing left to do.
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.agents.backend import AgentsBackend
from gateway.agent.client import AgentRefused
from gateway.errors import SandboxUnavailable
from gateway.packages import errors
from gateway.packages.cache import CacheMiss, Wheel
from gateway.packages.host import Fetched

#: Time a fetch request gets beyond the fetch's own deadline: the helper's container start and removal, the adoption
#: of its wheels into the node's cache.
FETCH_MARGIN = 30.0

_ERRORS: dict[str, type[errors.PackageError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidPackageRequest,
        errors.PackageNotAllowed,
        errors.PackageLimitExceeded,
        errors.PackageNotFound,
        errors.NoCompatibleWheel,
        errors.PackageConflict,
        errors.PackageIndexUnreachable,
        errors.PackageFetchFailed,
    )
}


class AgentPackageHost:
    """Packages on the nodes of ``backend``'s agents, addressed by the kernel's sandbox id."""

    def __init__(self, backend: AgentsBackend, fetch_timeout: float) -> None:
        self.backend = backend
        self.fetch_timeout = fetch_timeout

    def site(self, sandbox_id: int) -> str:
        try:
            return self.backend.node_serving(sandbox_id).name
        except SandboxUnavailable:
            return ""

    async def start_up(self, keep: set[int]) -> None:
        """Nothing: each agent removes the wheel directories of kernels without a container when it starts."""

    def close(self) -> None:
        return None

    async def _ask(self, sandbox_id: int, op: str, timeout: float | None = None, **fields: Any) -> tuple[str, Any]:
        """The node's name and its agent's ok body; a package error the agent reports is raised as such."""
        try:
            node = self.backend.node_serving(sandbox_id)
            body = await node.call(lambda c: c.request(op, timeout, kernel_id=sandbox_id, **fields))
        except AgentRefused as error:
            raise errors.PackageFetchFailed(f"The kernel's node refused the package request: {error}") from None
        except SandboxUnavailable as error:
            raise errors.PackageFetchFailed(f"The kernel's node did not answer the package request: {error}") from None
        problem = body.get("package_error")
        if isinstance(problem, dict):
            cls = _ERRORS.get(str(problem.get("ename")), errors.PackageFetchFailed)
            raise cls(f"{str(problem.get('message', ''))[:3000]}")
        return node.name, body

    async def lookup(self, sandbox_id: int, image: str | None, requirements: list[str]) -> list[Wheel] | None:
        node, body = await self._ask(sandbox_id, "packages_lookup", requirements=requirements)
        wheels = body.get("wheels")
        return None if wheels is None else _wheels(wheels, node)

    async def fetch(
        self, sandbox_id: int, image: str | None, requirements: list[str], max_bytes: int, deny: list[str]
    ) -> Fetched:
        node, body = await self._ask(
            sandbox_id, "packages_fetch", self.fetch_timeout + FETCH_MARGIN,
            requirements=requirements, max_bytes=max_bytes, deny=deny,
        )  # fmt: skip
        failure, seconds = body.get("failure"), body.get("seconds")
        return Fetched(
            wheels=_wheels(body.get("wheels") or [], node),
            failure=failure if isinstance(failure, dict) else None,
            index_url=str(body.get("index_url", ""))[:500],
            seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
            where=f"node {node}",
        )

    async def link(self, sandbox_id: int, wheels: list[Wheel], requirements: list[str]) -> None:
        _, body = await self._ask(
            sandbox_id, "packages_link", wheels=[wheel.as_json() for wheel in wheels], requirements=requirements
        )
        if body.get("cache_miss") is not None:
            raise CacheMiss(str(body["cache_miss"])[:300])

    async def holds(self, sandbox_id: int, wheels: list[Wheel]) -> bool:
        _, body = await self._ask(sandbox_id, "packages_holds", wheels=[wheel.as_json() for wheel in wheels])
        return body.get("holds") is True

    async def remove(self, sandbox_ids: set[int]) -> None:
        """Nothing: the agent removed the kernel's wheel directory with its container."""


def _wheels(items: Any, node: str) -> list[Wheel]:
    try:
        if not isinstance(items, list):
            raise ValueError("not a list")
        return [Wheel.from_json(item) for item in items]
    except ValueError as error:
        raise errors.PackageFetchFailed(f"The agent of node {node} sent unusable wheels: {error}") from None
