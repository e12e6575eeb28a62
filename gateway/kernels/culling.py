"""Idle culling and maximum lifetime: which kernels are due to be shut down, and the loop that does it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from gateway.kernels.kernel import Kernel

log = logging.getLogger(__name__)


def due_for_culling(
    kernels: Iterable[Kernel], now: float, idle_timeout: float, max_lifetime: float
) -> list[tuple[Kernel, str]]:
    """Kernels to shut down, each with the reason. ``0`` turns a limit off.

    A kernel is idle when nothing runs on it (its lock is free); a run in progress is never idle time. The
    maximum lifetime counts from the kernel's start, whatever it is doing. Kernels still starting are left alone.
    """
    due = []
    for kernel in kernels:
        if kernel.state == "starting":
            continue  # its container is being created or replaced: let that finish first
        if max_lifetime and now - kernel.created > max_lifetime:
            due.append((kernel, f"it reached the maximum lifetime of {max_lifetime:g} s"))
        elif idle_timeout and not kernel.lock.locked() and now - kernel.last_activity > idle_timeout:
            due.append((kernel, f"it was idle for more than {idle_timeout:g} s"))
    return due


async def cull_forever(
    kernels: Callable[[], Iterable[Kernel]],
    shut_down: Callable[[int, str], Awaitable[None]],
    *,
    idle_timeout: float,
    max_lifetime: float,
    interval: float,
) -> None:
    """Every ``interval`` seconds, shut down the kernels that are due (until cancelled)."""
    while True:
        await asyncio.sleep(interval)
        for kernel, reason in due_for_culling(list(kernels()), time.time(), idle_timeout, max_lifetime):
            log.info("shutting down kernel %d: %s", kernel.id, reason)
            try:
                await shut_down(kernel.id, reason)
            except Exception:
                log.exception("culling kernel %d failed", kernel.id)
