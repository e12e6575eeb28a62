"""Deaths: one policy for a kernel whose container is lost, wherever the loss is noticed.

A loss is noticed by a run or a file transfer (its connection raises KernelGone), by the engine's event stream
(``container_died``, also for kernels nobody is using), or after the event stream broke (``check_containers``).
All of them end in ``on_lost``: the kernel is marked dead with the cause (stored), the connection is woken, and a
fresh container is started in the background, cells kept and marked as not run.
"""

from __future__ import annotations

import logging

from gateway.kernels.kernel import Kernel, KernelEvent
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.ports import KernelConnection
from gateway.kernels.registry import KernelRegistry
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)


class DeathSupervisor:
    """Turns container deaths into the one death policy."""

    def __init__(self, registry: KernelRegistry, lifecycle: KernelLifecycle, tasks: TaskSet) -> None:
        self.registry = registry
        self.lifecycle = lifecycle
        self.tasks = tasks

    async def on_lost(self, kernel: Kernel, cause: str, *, replace: bool = True) -> None:
        """The kernel's container is lost (``cause`` says why and when): mark it dead, wake whoever waits on it,
        and (``replace``) start a fresh container that the kernel's next user waits for."""
        if kernel not in self.registry:
            return  # shut down meanwhile: nothing to bring back
        if kernel.client is not None:
            kernel.client.mark_dead(cause)
        kernel.notify(KernelEvent.DIED)
        await self.lifecycle.mark_dead(kernel, cause)
        if replace:
            self.lifecycle.replace_soon(kernel, died=True)

    def container_died(self, kernel_id: int, container_id: str) -> None:
        """Engine event, on the loop. A run or transfer in progress is woken (and applies the policy itself);
        otherwise the kernel is recovered in the background. Unclaimed warm-pool containers go to the pool."""
        kernel = self.registry.by_container(container_id)
        if kernel is None:
            self.lifecycle.pool.discard(container_id)
            return
        client = kernel.client
        if client is None:
            return  # being replaced or shut down already
        client.mark_dead("its container died")
        kernel.notify(KernelEvent.DIED)  # websockets let go of the kernel's lock now
        self.tasks.spawn(self._recover(kernel, client), name=f"recover-{kernel.id}")

    async def _recover(self, kernel: Kernel, dead_client: KernelConnection) -> None:
        async with kernel.lock:
            if kernel.client is not dead_client:
                return  # a run or a transfer noticed first and applied the policy
            cause = await self.lifecycle.death_cause(kernel)
            log.warning("kernel %d died while idle: %s; restarting it", kernel.id, cause)
            await self.on_lost(kernel, cause)
            self.lifecycle.observer.kernel_died(kernel)

    def events_resumed(self) -> None:
        """The engine's event stream broke and resumed: deaths may have gone unseen; look at every container."""
        self.tasks.spawn(self.check_containers(), name="check-containers")

    async def check_containers(self) -> None:
        backend = self.lifecycle.launcher.backend
        for kernel in self.registry:
            if kernel.client is not None and await backend.exit_status(kernel.sandbox_id) is not None:
                self.container_died(kernel.sandbox_id, kernel.container_id)
