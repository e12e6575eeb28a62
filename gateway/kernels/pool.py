"""The warm pool: kernel containers started ahead of time, so ``POST /start`` only has to claim one.

A ``KernelPool`` keeps ``size`` fully ready kernels of the deployment's profile: each in its own fresh container,
with its own connection info and HMAC key, connected and answering (started by the same ``KernelLauncher`` as every
other kernel). ``claim`` hands one out (or None: the caller then starts a kernel cold) and the pool refills in the
background, a few starts at a time. A claimed kernel leaves the pool for good; nothing of it is handed out again.

Each pooled kernel is made for the random kernel id it will have once claimed (told to no one before the claim), so
claiming changes nothing on the engine. A restart, a replacement after a deadline or a recovery after a death claims
one too, for an existing kernel: that kernel keeps its own id and runs in a container made for the pool's id, which
stays its *sandbox id* (``SandboxHandle.kernel_id``, stored with the kernel so that a restarted gateway finds it).

Unclaimed ones are not in the registry: a request for their id is a 404, their death is the pool's business
(``discard``), and they are removed when the gateway shuts down, and by the leftover clean-up of the next start like
any container of the instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.kernels.launcher import KernelLauncher, Launched
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)

#: Longest pause between failed refill attempts (the engine is down, the image is missing...).
_MAX_BACKOFF = 30.0


@dataclass
class ReadyKernel:
    """A started, answering kernel that no one owns yet."""

    kernel_id: int
    jupyter_id: str
    launched: Launched
    ready_at: float

    @property
    def container_id(self) -> str:
        return self.launched.handle.container_id


class KernelPool:
    """Pre-started kernels of one runtime. Create on the loop, ``start()``, ``claim()``, ``close()``."""

    def __init__(
        self,
        launcher: KernelLauncher,
        new_kernel_id: Callable[[], int],
        *,
        size: int,
        parallel: int,
        runtime: str,
    ) -> None:
        self.launcher = launcher
        self._new_kernel_id = new_kernel_id
        self.size = size
        self.parallel = parallel
        self.runtime = runtime
        self.hits = 0
        self.misses = 0
        self.failures = 0
        self._ready: deque[ReadyKernel] = deque()
        self._starting = 0
        self._backoff = 0.0
        self._closed = False
        self._changed = asyncio.Event()
        self._tasks = TaskSet()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin filling the pool in the background (returns at once)."""
        if self.size > 0:
            self._tasks.spawn(self._keep_full(), name="pool-refill")

    async def close(self) -> None:
        """Stop refilling; remove every unclaimed container."""
        self._closed = True
        await self._tasks.cancel_all()
        ready, self._ready = list(self._ready), deque()
        await asyncio.gather(*(self._dispose(k) for k in ready), return_exceptions=True)

    # --- used by the core ---------------------------------------------------------------------------------

    async def claim(self, runtime: str) -> ReadyKernel | None:
        """A ready kernel of ``runtime``, now the caller's alone, or None if there is none (start one cold)."""
        if self.size <= 0 or runtime != self.runtime:
            return None
        if not self._ready:
            self.misses += 1
            return None
        self.hits += 1
        kernel = self._ready.popleft()
        self._changed.set()
        return kernel

    def discard(self, container_id: str) -> bool:
        """An unclaimed container died (engine event): drop it and start a replacement. False if not ours."""
        for kernel in self._ready:
            if kernel.container_id == container_id:
                self._ready.remove(kernel)
                log.warning("warm-pool kernel %s died before it was claimed; replacing it", container_id[:12])
                self._tasks.spawn(self._dispose(kernel), name="pool-dispose")
                self._changed.set()
                return True
        return False

    def moved(self, sandbox_id: int) -> None:
        """An unclaimed kernel is reached at a new address: it is replaced (its connection is to the old one)."""
        for kernel in self._ready:
            if kernel.kernel_id == sandbox_id:
                self._ready.remove(kernel)
                self._tasks.spawn(self._dispose(kernel), name="pool-dispose")
                self._changed.set()
                return

    def status(self) -> dict[str, Any]:
        """What GET /pool shows (without the profile, which the service adds)."""
        return {
            "size": self.size,
            "ready": len(self._ready),
            "starting": self._starting,
            "hits": self.hits,
            "misses": self.misses,
            "failures": self.failures,
        }

    # --- filling ------------------------------------------------------------------------------------------

    async def _keep_full(self) -> None:
        """Start kernels while the pool is short, at most ``parallel`` at a time; sleep until something changes."""
        while not self._closed:
            self._changed.clear()
            missing = self.size - len(self._ready) - self._starting
            for _ in range(max(0, min(missing, self.parallel - self._starting))):
                self._starting += 1
                self._tasks.spawn(self._add_one(), name="pool-start")
            await self._changed.wait()

    async def _add_one(self) -> None:
        try:
            if self._backoff:
                await asyncio.sleep(self._backoff)
            kernel_id, jupyter_id = self._new_kernel_id(), str(uuid.uuid4())
            launched = await self.launcher.launch(kernel_id, jupyter_id, self.runtime, pooled=True)
            kernel = ReadyKernel(kernel_id, jupyter_id, launched, time.time())
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

    async def _dispose(self, kernel: ReadyKernel) -> None:
        await self.launcher.teardown(kernel.kernel_id, kernel.launched.client)
