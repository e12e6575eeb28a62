"""Packages on demand on an agent's node: the node's wheel cache and fetch helpers (``LocalPackageHost``, the same
code as the local backend's, with this node's ``JUPYCELL_PACKAGE*`` settings), the wheel mount and packages tmpfs of
each kernel container started here, and the answers to the gateways' ``packages_*`` control requests.

Every request field is untrusted: requirements are parsed again (``gateway.packages.requirements``) and checked
against this node's own policy; wheels are read with ``Wheel.from_json``; byte caps are this node's at most; the
kernel must be one of the node's running kernels (checked by the agent). A refusal or failure is answered as
``{"package_error": {"ename", "message"}}`` in an ``ok`` reply, never raised into the agent. A fetch runs in the
fetcher's threads (the event loop and the other requests go on) and at most ``max_fetches`` run at once.
"""

from __future__ import annotations

import logging
from typing import Any

from packaging.utils import canonicalize_name

from gateway.agent.protocol import PackagesLinkRequest, PackagesRequest, PackagesResolveRequest
from gateway.packages.cache import CacheMiss, Wheel
from gateway.packages.errors import PackageError, PackageFetchFailed, PackageNotAllowed
from gateway.packages.local_host import LocalPackageHost
from gateway.packages.policy import PackagePolicy
from gateway.packages.requirements import parse_requirement
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: The helper's failure fields passed on to the gateway (as text, bounded), the rest dropped.
_FAILURE_TEXT = {"kind": 40, "message": 3000, "name": 200, "platform": 200}


class NodePackages:
    """Packages on demand for the kernels of this node (``enabled`` unless ``JUPYCELL_PACKAGES=off`` here)."""

    def __init__(self, sandbox_settings: Settings, config: PackageSettings | None = None, max_fetches: int = 4) -> None:
        self.config = config or PackageSettings()
        self.enabled = self.config.packages != "off"
        self.policy = PackagePolicy.from_settings(self.config)
        self.host = LocalPackageHost(sandbox_settings, self.config)
        self.max_fetches = max_fetches
        self._fetching = 0

    def container_mounts(self, sandbox_id: int) -> dict[str, Any]:
        """The wheel mount and packages tmpfs of a kernel container (blocking: the sandbox's threads)."""
        return self.host.container_mounts(sandbox_id) if self.enabled else {}

    async def start_up(self, keep: set[int]) -> None:
        """Learn the index; remove the wheel directories of kernels without a container here."""
        if self.enabled:
            await self.host.start_up(keep)
            log.info(
                "packages: %s, index %s, cache %s", self.config.packages, self.host.index_url, self.host.cache.root
            )

    async def remove(self, kernel_id: int) -> None:
        """The kernel's container was removed: its wheel directory goes too (a new one is linked again)."""
        if self.enabled:
            await self.host.remove({kernel_id})

    def close(self) -> None:
        self.host.close()

    async def answer(self, request: PackagesRequest, container: str) -> dict[str, Any]:
        """The ok body for a ``packages_*`` request about the kernel whose container is named ``container``."""
        try:
            if not self.enabled:
                raise PackageNotAllowed("Packages on demand are off on this node (JUPYCELL_PACKAGES=off).")
            if isinstance(request, PackagesResolveRequest):
                return await self._resolve(request, container)
            return await self._link(request)
        except PackageError as error:
            return {"package_error": {"ename": type(error).__name__, "message": str(error)[:3000]}}

    def _requirements(self, texts: list[str]) -> list[str]:
        """The requirements parsed again and each checked against this node's policy (mode, allow and deny lists;
        how many a kernel may have is the gateway's to count). Raises PackageError."""
        requests = [parse_requirement(text) for text in texts]
        for request in requests:
            self.policy.check_request([request], set())
        return [request.requirement for request in requests]

    async def _resolve(self, request: PackagesResolveRequest, container: str) -> dict[str, Any]:
        requirements = self._requirements(request.requirements)
        image = await self.host.fetcher.container_image(container)
        if request.op == "packages_lookup":
            wheels = await self.host.lookup(request.kernel_id, image, requirements)
            return {"wheels": None if wheels is None else [wheel.as_json() for wheel in wheels]}
        if self._fetching >= self.max_fetches:
            raise PackageFetchFailed(f"This node runs {self.max_fetches} package fetches already; try again shortly.")
        max_bytes = min(request.max_bytes, self.policy.max_request_bytes)
        deny = sorted({canonicalize_name(name) for name in request.deny} | self.policy.deny)
        self._fetching += 1
        try:
            fetched = await self.host.fetch(request.kernel_id, image, requirements, max_bytes, deny)
        finally:
            self._fetching -= 1
        log.info("fetch helper for %s ran %.1f s", ", ".join(requirements), fetched.seconds)
        return {
            "wheels": [wheel.as_json() for wheel in fetched.wheels],
            "failure": None if fetched.failure is None else _failure(fetched.failure),
            "index_url": fetched.index_url,
            "seconds": round(fetched.seconds, 3),
        }

    async def _link(self, request: PackagesLinkRequest) -> dict[str, Any]:
        try:
            wheels = [Wheel.from_json(item) for item in request.wheels]
        except ValueError as error:
            raise PackageFetchFailed(f"A wheel of the request is not valid: {error}") from None
        if request.op == "packages_holds":
            return {"holds": await self.host.holds(request.kernel_id, wheels)}
        requirements = self._requirements(request.requirements) if request.requirements else []
        try:
            await self.host.link(request.kernel_id, wheels, requirements)
        except CacheMiss as missing:
            return {"cache_miss": str(missing)}
        return {}


def _failure(result: dict[str, Any]) -> dict[str, Any]:
    """The helper's failure result (untrusted JSON), cut down to the fields the gateway reads, bounded."""
    failure: dict[str, Any] = {key: str(result[key])[:limit] for key, limit in _FAILURE_TEXT.items() if key in result}
    versions = result.get("versions")
    if isinstance(versions, list):
        failure["versions"] = [str(version)[:50] for version in versions[-10:]]
    total = result.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        failure["total"] = total
    wheels = result.get("wheels")
    if isinstance(wheels, list):
        failure["wheels"] = [
            {"name": str(w.get("name"))[:100], "version": str(w.get("version"))[:50]}
            for w in wheels[:50]
            if isinstance(w, dict)
        ]
    return failure
