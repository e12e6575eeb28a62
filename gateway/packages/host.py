"""``PackageHost``: the part of packages on demand that happens where a kernel runs, on that machine's disk and engine.

``PackageService`` (the gateway) parses, applies the policy and the byte caps, single-flights fetches, keeps the store
records and installs in the kernel through its connection; everything that touches the wheel cache, the fetch helper
or a kernel's wheel directory goes through this port, addressed by the kernel's sandbox id (the container's id: after a
restart from the warm pool, the pool's id). Two adapters:

- ``gateway.packages.local_host.LocalPackageHost``: this machine (the local backend; also what each node agent uses
  on its own node);
- ``gateway.adapters.agents.packages.AgentPackageHost``: asks the agent of the kernel's node over its control channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.packages.cache import Wheel


@dataclass(frozen=True)
class Fetched:
    """One run of the fetch helper: the wheels it fetched (now cached), or its ``failure`` (the helper's untrusted
    result JSON: ``kind``, ``message``, ...; the gateway turns it into the user's error), and the index it asked."""

    wheels: list[Wheel]
    failure: dict[str, Any] | None
    index_url: str
    seconds: float = 0.0
    where: str = ""


class PackageHost(Protocol):
    """Wheel cache, fetch helper and kernels' wheel directories where the kernel ``sandbox_id`` runs. Blocking work
    runs off the event loop; a fetch is bounded by ``JUPYCELL_PACKAGE_FETCH_TIMEOUT``."""

    def site(self, sandbox_id: int) -> str:
        """Which cache serves the kernel (``""`` locally, the node's name on agents): fetches are single-flight per
        site and request."""
        ...

    async def start_up(self, keep: set[int]) -> None:
        """Learn the index; remove the wheel directories of sandboxes not in ``keep`` (the gateway's start-up)."""
        ...

    async def lookup(self, sandbox_id: int, image: str | None, requirements: list[str]) -> list[Wheel] | None:
        """What the request resolved to before for the kernel's image (and the index), if still fresh and cached."""
        ...

    async def fetch(
        self, sandbox_id: int, image: str | None, requirements: list[str], max_bytes: int, deny: list[str]
    ) -> Fetched:
        """Run the fetch helper for the kernel's image; adopt its wheels into the cache and remember the resolution.
        Raises ``PackageError`` when it could not run (engine, deadline, unusable result)."""
        ...

    async def link(self, sandbox_id: int, wheels: list[Wheel], requirements: list[str]) -> None:
        """Hard-link the wheels into the kernel's directory; its manifest maps each requirement to them. Raises
        ``gateway.packages.cache.CacheMiss`` if one was evicted meanwhile."""
        ...

    async def holds(self, sandbox_id: int, wheels: list[Wheel]) -> bool:
        """Whether the kernel's directory holds every one of the wheels."""
        ...

    async def remove(self, sandbox_ids: set[int]) -> None:
        """The kernel is gone for good: its wheel directories go."""
        ...

    def close(self) -> None: ...
