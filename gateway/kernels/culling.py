"""Idle culling, maximum lifetime and the retention of dead kernels: what is due, and the loop that does it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from gateway.kernels.kernel import Kernel, KernelState

log = logging.getLogger(__name__)


def due_for_culling(
    kernels: Iterable[Kernel], now: float, idle_timeout: float, max_lifetime: float
) -> list[tuple[Kernel, str]]:
    """Kernels to shut down, each with the reason. ``0`` turns a limit off.

    A kernel is idle when nothing runs on it (its lock is free: no cell run, file transfer or websocket execution);
    a run in progress is never idle time. The maximum lifetime counts from the kernel's start, whatever it is
    doing. Kernels still starting are left alone.
    """
    due = []
    for kernel in kernels:
        if kernel.state == KernelState.STARTING:
            continue  # its container is being created or replaced: let that finish first
        if max_lifetime and now - kernel.created > max_lifetime:
            due.append((kernel, f"it reached the maximum lifetime of {max_lifetime:g} s"))
        elif idle_timeout and not kernel.busy and now - kernel.last_activity > idle_timeout:
            due.append((kernel, f"it was idle for more than {idle_timeout:g} s"))
    return due


def expired_dead(kernels: Iterable[Kernel], now: float, ttl: float) -> list[Kernel]:
    """Dead kernels kept longer than ``ttl`` seconds since they died (``0``: kept until restarted or shut down)."""
    if not ttl:
        return []
    return [k for k in kernels if k.state == KernelState.DEAD and k.replacing is None and now - k.last_activity > ttl]


async def cull_forever(
    kernels: Callable[[], Iterable[Kernel]],
    shut_down: Callable[[int, str], Awaitable[None]],
    forget: Callable[[Kernel, str], Awaitable[None]],
    *,
    idle_timeout: float,
    max_lifetime: float,
    dead_ttl: float,
    interval: float,
) -> None:
    """Every ``interval`` seconds, shut down the kernels that are due and forget expired dead ones (until
    cancelled)."""
    while True:
        await asyncio.sleep(interval)
        now = time.time()
        for kernel in expired_dead(list(kernels()), now, dead_ttl):
            log.info("removing dead kernel %d: dead for more than %g s", kernel.id, dead_ttl)
            try:
                await forget(kernel, f"it was dead for more than {dead_ttl:g} s (dead_kernel_ttl)")
            except Exception:
                log.exception("removing dead kernel %d failed", kernel.id)
        for kernel, reason in due_for_culling(list(kernels()), now, idle_timeout, max_lifetime):
            log.info("shutting down kernel %d: %s", kernel.id, reason)
            try:
                await shut_down(kernel.id, reason)
            except Exception:
                log.exception("culling kernel %d failed", kernel.id)
