"""Moves: a kernel whose sandbox is reached at a new address now, its container and memory untouched.

A backend that can tell (``MovingBackend``: the agents backend, when a node's agent comes back at a new address)
calls ``kernel_moved``. The kernel's connection is re-pointed at once to a handle from ``backend.restore`` (same
container, key and memory): the old connection is woken, so a run in flight on it ends with an error saying the
connection moved (``MOVED``) instead of waiting for its deadline; whoever uses the kernel next gets the new one,
answering. A kernel that does not answer at its new address goes through the death policy.
"""

from __future__ import annotations

import logging

from gateway.errors import KernelGone, KernelUnresponsive
from gateway.kernels.kernel import Kernel, KernelEvent, KernelState
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.ports import KernelConnection
from gateway.kernels.registry import KernelRegistry
from gateway.kernels.supervisor import DeathSupervisor
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)

#: What a run in flight on the old connection is told (its cause, as ``KernelGone``).
MOVED = "the connection to the kernel moved (its node's agent came back at a new address)"


def moved_away(kernel: Kernel, client: KernelConnection) -> bool:
    """``client`` (which raised KernelGone) was replaced by a re-pointed connection: the kernel itself is fine."""
    return kernel.client is not None and kernel.client is not client and kernel.alive


class KernelMoves:
    """Re-points kernels' connections when their backend reaches them at a new address."""

    def __init__(
        self, registry: KernelRegistry, lifecycle: KernelLifecycle, supervisor: DeathSupervisor, tasks: TaskSet,
        timeout: float,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.lifecycle = lifecycle
        self.supervisor = supervisor
        self.tasks = tasks
        self.timeout = timeout

    def kernel_moved(self, sandbox_id: int) -> None:
        """Backend callback, on the loop: connect the kernel whose sandbox is ``sandbox_id`` (its own id, or the
        warm pool's after a restart from the pool) again where its backend reaches it now."""
        kernel = next((k for k in self.registry if k.sandbox_id == sandbox_id), None)
        if kernel is None:
            self.lifecycle.pool.moved(sandbox_id)  # perhaps a warm-pool kernel: not handed out on its old address
            return
        if kernel.client is None or kernel.handle is None or kernel.replacing is not None:
            return  # unknown here, shut down, or being replaced: its next container is reached at the new address
        old, handle = kernel.client, kernel.handle
        moved = self.lifecycle.launcher.backend.restore(kernel.sandbox_id, handle.to_state(), handle.key)
        if moved.connection_info == handle.connection_info:
            return
        client = self.lifecycle.launcher.connector.connect(moved.connection_info)
        kernel.handle, kernel.client = moved, client
        old.mark_dead(MOVED)  # a run in flight ends now, with that cause
        kernel.notify(KernelEvent.STOPPED)  # websockets let go of the old address
        log.warning("kernel %d: its sandbox is reached at a new address; reconnecting (memory kept)", kernel.id)
        self.tasks.spawn(self._settle(kernel, old, client), name=f"reconnect-{kernel.id}")

    async def _settle(self, kernel: Kernel, old: KernelConnection, client: KernelConnection) -> None:
        """After the run in flight (the kernel's lock): the new connection answers, or the death policy applies."""
        async with kernel.lock:
            old.close()
            if kernel.client is not client:
                return  # moved again, replaced or shut down meanwhile
            try:
                await client.wait_ready(self.timeout)
            except (KernelUnresponsive, KernelGone) as error:
                cause = await self.lifecycle.death_cause(kernel)
                await self.supervisor.on_lost(kernel, f"{cause} after its connection moved ({error})")
                self.lifecycle.observer.kernel_died(kernel)
                return
            if kernel.state is not KernelState.DEAD:
                kernel.set_state(KernelState.IDLE)
            kernel.notify(KernelEvent.STARTED)
            log.info("kernel %d reconnected at its new address", kernel.id)
