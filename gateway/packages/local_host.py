"""``LocalPackageHost``: the ``PackageHost`` of this machine: its wheel cache (``JUPYCELL_PACKAGES_DIR``), fetch
helpers on its engine, its kernels' wheel directories and the mounts that give a kernel container its wheels.

The gateway uses it with the local backend; a node agent uses it on its own node (``gateway.agent.packages``).
Every blocking call runs in a thread (the fetcher's own pool for the engine, ``asyncio.to_thread`` for the disk).
"""

from __future__ import annotations

import asyncio
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from gateway.packages.cache import Wheel, WheelCache, resolution_key
from gateway.packages.errors import PackageFetchFailed
from gateway.packages.fetcher import FetchJob, WheelFetcher
from gateway.packages.host import Fetched
from gateway.packages.kernel_side import CONTAINER_PACKAGES_DIR, CONTAINER_WHEEL_DIR
from gateway.packages.policy import MB
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings


class LocalPackageHost:
    """Packages on this machine's disk and engine, for the kernels of one instance."""

    def __init__(self, settings: Settings, config: PackageSettings) -> None:
        self.instance = settings.instance
        self.uid = settings.kernel_uid
        self.default_image = settings.sandbox_image
        self.config = config
        self.fetcher = WheelFetcher(
            instance=settings.instance,
            uid=settings.kernel_uid,
            runtime=config.package_fetch_runtime,
            network=config.package_fetch_network,
            mem_limit_mb=config.package_fetch_mem_mb,
            timeout=config.package_fetch_timeout,
            ca_bundle=config.ca_bundle(),
            docker_host=settings.docker_host,
        )
        self.index_url = config.package_index_url or ""
        self._image_ids: dict[str, str] = {}

    @cached_property
    def cache(self) -> WheelCache:
        """The wheel cache, its directories created on first use (blocking; never used while packages are off)."""
        return WheelCache(self.config.packages_dir, self.config.package_cache_mb * MB, self.uid)

    def site(self, sandbox_id: int) -> str:
        return ""

    async def start_up(self, keep: set[int]) -> None:
        self.index_url = await asyncio.to_thread(self.config.index_url)
        await asyncio.to_thread(self.cache.remove_kernels_except, self.instance, keep)

    def close(self) -> None:
        self.fetcher.close()

    # --- the kernels' directories ---------------------------------------------------------------------------

    def wheel_dir(self, sandbox_id: int) -> Path:
        """The wheel directory of the container started for ``sandbox_id``, created (blocking: the sandbox calls it
        in its threads)."""
        path = self.cache.kernel_dir(self.instance, sandbox_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def container_mounts(self, sandbox_id: int) -> dict[str, Any]:
        """Extra mounts of a kernel's container: its wheel directory (read-only) and the tmpfs packages are
        installed into (executable: compiled extensions load from it). Blocking (the sandbox's threads)."""
        uid, size = self.uid, self.config.packages_tmpfs_mb
        return {
            "volumes": {str(self.wheel_dir(sandbox_id)): {"bind": CONTAINER_WHEEL_DIR, "mode": "ro"}},
            "tmpfs": {
                CONTAINER_PACKAGES_DIR: f"rw,exec,nosuid,nodev,size={size}m,uid={uid},gid={uid},mode=0700",
            },
        }

    async def link(self, sandbox_id: int, wheels: list[Wheel], requirements: list[str]) -> None:
        directory = await asyncio.to_thread(self.wheel_dir, sandbox_id)
        await asyncio.to_thread(self.cache.link_into, directory, wheels)
        await asyncio.to_thread(self.cache.record_manifest, directory, requirements, wheels)

    async def holds(self, sandbox_id: int, wheels: list[Wheel]) -> bool:
        directory = self.cache.kernel_dir(self.instance, sandbox_id)
        return await asyncio.to_thread(self.cache.kernel_holds, directory, wheels)

    async def remove(self, sandbox_ids: set[int]) -> None:
        for sandbox_id in sandbox_ids:
            await asyncio.to_thread(self.cache.remove_kernel, self.instance, sandbox_id)

    # --- resolutions and fetches ----------------------------------------------------------------------------

    async def _key(self, image: str | None, requirements: list[str]) -> str:
        image = image or self.default_image
        if image not in self._image_ids:
            self._image_ids[image] = await self.fetcher.image_id(image)
        return resolution_key(self._image_ids[image], self.index_url, requirements)

    async def lookup(self, sandbox_id: int, image: str | None, requirements: list[str]) -> list[Wheel] | None:
        key = await self._key(image, requirements)
        return await asyncio.to_thread(self.cache.lookup, key, self.config.package_resolution_ttl)

    async def fetch(
        self, sandbox_id: int, image: str | None, requirements: list[str], max_bytes: int, deny: list[str]
    ) -> Fetched:
        key = await self._key(image, requirements)
        incoming = await asyncio.to_thread(self.cache.new_incoming)
        try:
            job = FetchJob(image or self.default_image, requirements, self.index_url, max_bytes, deny, incoming)
            started = time.monotonic()
            await self.fetcher.run(job)
            seconds = time.monotonic() - started
            try:
                result = await asyncio.to_thread(self.cache.read_result, incoming)
                if not isinstance(result, dict):
                    raise ValueError("no result")
                if not result.get("ok"):
                    return Fetched([], result, self.index_url, seconds)
                wheels = [Wheel.from_json(item) for item in result.get("wheels", [])]
                await asyncio.to_thread(self.cache.adopt, incoming, wheels)
            except (ValueError, TypeError) as error:
                raise PackageFetchFailed(f"The package fetch helper gave an unusable result: {error}") from None
        finally:
            await asyncio.to_thread(self.cache.discard, incoming)
        await asyncio.to_thread(self.cache.remember, key, wheels)
        await asyncio.to_thread(self.cache.evict)
        return Fetched(wheels, None, self.index_url, seconds)
