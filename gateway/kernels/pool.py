"""The warm pool: kernel containers started ahead of time, so ``POST /start`` only has to claim one.

A ``KernelPool`` keeps ``size`` fully ready kernels of one sandbox profile (image, runtime, limits): each in its own
fresh container with its own socket directory and its own random HMAC key, connected and answering. ``claim`` hands
one out (or None: the caller then starts a kernel cold) and the pool refills in the background, a few starts at a
time. A claimed kernel leaves the pool for good; nothing of it is ever handed out again.

Each pooled kernel is made for the random kernel id it will have once claimed (drawn like any kernel id, and told to
no one before the claim): its container name, labels and socket directory are exactly a cold-started kernel's, plus
the ``jupycell.pool`` label, so claiming changes nothing on the engine and every part of the gateway that finds a
kernel's container or sockets by its id finds these too. Unclaimed ones are not in the manager's kernels: a request
for their id is a 404, their death is the pool's business (``discard``), and they are removed when the gateway shuts
down, and by the leftover clean-up of the next start like any container of the instance.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.kernels.client import KernelClient, KernelGone, KernelUnresponsive
from gateway.kernels.connection import host_view, new_connection_info, prepare_socket_dir, seal_socket_dir
from gateway.sandbox import DockerSandbox
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: Longest pause between failed refill attempts (the engine is down, the image is missing...).
_MAX_BACKOFF = 30.0


@dataclass
class ReadyKernel:
    """A started, answering kernel that no one owns yet."""

    kernel_id: int
    container_id: str
    socket_dir: Path
    client: KernelClient
    connection_info: dict[str, Any]  # host view, holds the key: secret
    ready_at: float


class KernelPool:
    """Pre-started kernels of the sandbox's profile. Create on the loop, ``start()``, ``claim()``, ``close()``."""

    def __init__(self, settings: Settings, sandbox: DockerSandbox, new_kernel_id: Callable[[], int]) -> None:
        self.settings = settings
        self._new_kernel_id = new_kernel_id
        self.sandbox = sandbox
        self.profile = sandbox.spec
        self.size = settings.pool_size
        self.parallel = settings.pool_parallel_starts
        self.hits = 0
        self.misses = 0
        self.failures = 0
        self._ready: deque[ReadyKernel] = deque()
        self._starting = 0
        self._backoff = 0.0
        self._closed = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin filling the pool in the background (returns at once)."""
        if self.size > 0:
            self._spawn(self._keep_full())

    async def close(self) -> None:
        """Stop refilling; remove every unclaimed container and its socket directory."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        ready, self._ready = list(self._ready), deque()
        await asyncio.gather(*(self._dispose(k) for k in ready), return_exceptions=True)

    # --- used by the kernel manager -----------------------------------------------------------------------

    def claim(self) -> ReadyKernel | None:
        """A ready kernel, now the caller's alone, or None if the pool is empty (start one cold)."""
        if self.size <= 0:
            return None
        if not self._ready:
            self.misses += 1
            return None
        self.hits += 1
        kernel = self._ready.popleft()
        self._changed.set()
        return kernel

    def discard(self, container_id: str) -> None:
        """An unclaimed container died (engine event): drop it and start a replacement."""
        for kernel in self._ready:
            if kernel.container_id == container_id:
                self._ready.remove(kernel)
                log.warning("warm-pool kernel %s died before it was claimed; replacing it", container_id[:12])
                self._spawn(self._dispose(kernel))
                self._changed.set()
                return

    def status(self) -> dict[str, Any]:
        """What GET /pool shows."""
        return {
            "size": self.size,
            "ready": len(self._ready),
            "starting": self._starting,
            "hits": self.hits,
            "misses": self.misses,
            "failures": self.failures,
            "profile": asdict(self.profile),
        }

    # --- filling ------------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keep_full(self) -> None:
        """Start kernels while the pool is short, at most ``parallel`` at a time; sleep until something changes."""
        while not self._closed:
            self._changed.clear()
            missing = self.size - len(self._ready) - self._starting
            for _ in range(max(0, min(missing, self.parallel - self._starting))):
                self._starting += 1
                self._spawn(self._add_one())
            await self._changed.wait()

    async def _add_one(self) -> None:
        try:
            if self._backoff:
                await asyncio.sleep(self._backoff)
            kernel = await self._launch()
            if self._closed:
                await self._dispose(kernel)
                return
            self._ready.append(kernel)
            self._backoff = 0.0
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failures += 1
            self._backoff = min(_MAX_BACKOFF, max(0.5, self._backoff * 2))
            log.warning("warm-pool kernel failed to start (retrying in %.1f s): %s", self._backoff, error)
        finally:
            self._starting -= 1
            self._changed.set()

    async def _launch(self) -> ReadyKernel:
        """One fresh container with a fresh key, connected and answering (everything undone on failure)."""
        kernel_id = self._new_kernel_id()
        socket_dir = self.settings.instance_dir / str(kernel_id)
        info = new_connection_info()
        client: KernelClient | None = None
        container_id = ""
        try:
            await asyncio.to_thread(prepare_socket_dir, socket_dir, info, self.settings.kernel_uid)
            container_id = await self.sandbox.start_pooled(kernel_id, socket_dir)
            client = KernelClient(host_view(info, socket_dir), max_message_bytes=self.settings.max_message_mb * 2**20)
            await client.wait_ready(self.settings.kernel_start_timeout)
            await asyncio.to_thread(seal_socket_dir, socket_dir)
        except BaseException as error:
            if client is not None:
                client.close()
            await asyncio.shield(self._remove(container_id or self.sandbox.container_name(kernel_id), socket_dir))
            if isinstance(error, KernelUnresponsive | KernelGone):
                raise RuntimeError(f"kernel did not become ready: {error}") from error
            raise
        return ReadyKernel(kernel_id, container_id, socket_dir, client, host_view(info, socket_dir), time.time())

    async def _dispose(self, kernel: ReadyKernel) -> None:
        kernel.client.close()
        await self._remove(kernel.container_id, kernel.socket_dir)

    async def _remove(self, container: str, socket_dir: Path) -> None:
        await self.sandbox.remove_container(container)
        await asyncio.to_thread(shutil.rmtree, socket_dir, True)
