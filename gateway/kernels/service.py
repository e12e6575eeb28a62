"""``KernelService``: the core's facade, the only thing the HTTP layers use.

It is built from the ports' adapters (``gateway.main`` wires them) and composes the core's parts: the registry,
the launcher, the warm pool, the lifecycle, the death supervisor, the cell runner and editor, and file transfer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.kernels import recovery
from gateway.kernels.culling import cull_forever
from gateway.kernels.editing import CellEditor
from gateway.kernels.execution import CellRunner, RunLimits
from gateway.kernels.files import FileTransfer
from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.launcher import KernelLauncher
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.observer import NullObserver
from gateway.kernels.pool import KernelPool
from gateway.kernels.ports import (
    KernelConnector,
    KernelObserver,
    KernelOwnership,
    KernelStore,
    OnOutput,
    SandboxBackend,
)
from gateway.kernels.registry import KernelRegistry, new_kernel_id
from gateway.kernels.replicas import ReplicaCoordinator
from gateway.kernels.supervisor import DeathSupervisor
from gateway.kernels.tasks import TaskSet
from gateway.notebook import Cell
from gateway.settings import Settings

log = logging.getLogger(__name__)


class KernelService:
    """Every kernel of this gateway instance. Create one per process; ``await start_up()`` before use."""

    def __init__(
        self,
        settings: Settings,
        backend: SandboxBackend,
        connector: KernelConnector,
        store: KernelStore,
        observer: KernelObserver | None = None,
        ownership: KernelOwnership | None = None,
    ) -> None:
        """``ownership``: this gateway is one of several replicas on the store's database (issue 11)."""
        self.settings = settings
        self.observer: KernelObserver = observer or NullObserver()
        self.backend = backend
        self.store = store
        self.tasks = TaskSet()
        self.registry = KernelRegistry(settings.max_kernels, settings.max_kernels_per_key)
        launcher = KernelLauncher(backend, connector, settings.kernel_start_timeout)
        self.pool = KernelPool(
            launcher, new_kernel_id, size=settings.pool_size, parallel=settings.pool_parallel_starts,
            runtime=settings.runtime,
        )  # fmt: skip
        self.lifecycle = KernelLifecycle(
            instance=settings.instance,
            runtimes=settings.runtimes,
            default_runtime=settings.runtime,
            registry=self.registry,
            launcher=launcher,
            store=store,
            pool=self.pool,
            tasks=self.tasks,
            mem_limit_mb=settings.mem_limit_mb,
            observer=self.observer,
        )
        self.supervisor = DeathSupervisor(self.registry, self.lifecycle, self.tasks)
        self.runner = CellRunner(
            RunLimits(
                run_timeout=settings.run_timeout,
                interrupt_grace=settings.interrupt_grace,
                max_output_bytes=settings.max_output_bytes,
                max_outputs=settings.max_outputs,
                max_image_bytes=settings.max_image_bytes,
                output_flush_interval=settings.output_flush_interval,
            ),
            store,
            self.lifecycle,
            self.supervisor,
        )
        self.editor = CellEditor(store, settings.max_cells, self.observer)
        self.files = FileTransfer(self.lifecycle, self.supervisor, settings.max_file_bytes)
        self.replicas = ReplicaCoordinator(ownership, self.lifecycle, settings.reattach_timeout) if ownership else None

    # --- the gateway's own life -----------------------------------------------------------------------------

    async def start_up(self) -> None:
        """Check the engine, follow container deaths, then take back what an earlier run of this instance left
        (see ``gateway.kernels.recovery``), and start culling and the warm pool."""
        settings = self.settings
        await self.backend.check_ready(settings.runtimes)
        self.backend.watch_deaths(
            asyncio.get_running_loop(), self.supervisor.container_died, self.supervisor.events_resumed
        )
        others = False
        if self.replicas is not None:  # issue 11: take only what no live replica owns
            await self.replicas.join()
            others = await self.replicas.ownership.others_alive()
        interrupted = await self.store.interrupt_open_runs(settings.instance, recovery.INTERRUPTED_DETAIL)
        records = await self.store.load_kernels(settings.instance)
        containers = await self.backend.list_own()
        plan = recovery.plan(
            records, containers, {run.kernel_id for run in interrupted}, settings.mem_limit_mb, keep_unknown=others
        )
        await recovery.apply(plan, self.lifecycle, settings.reattach_timeout)
        if self.replicas is not None:
            self.tasks.spawn(self.replicas.keep_alive(settings.lease_seconds / 3), name="replica-lease")
        if settings.idle_timeout or settings.max_lifetime or settings.dead_kernel_ttl:
            self.tasks.spawn(
                cull_forever(
                    lambda: self.registry,
                    self.shutdown,
                    self.lifecycle.forget,
                    idle_timeout=settings.idle_timeout,
                    max_lifetime=settings.max_lifetime,
                    dead_ttl=settings.dead_kernel_ttl,
                    interval=settings.cull_interval,
                ),
                name="culling",
            )
        self.pool.start()

    async def shut_down(self) -> None:
        """Clean stop. ``on_stop=keep``: let go of the kernels, leaving them running for the next start.
        ``on_stop=shutdown``: remove their containers; their records and cells stay, marked dead."""
        await self.tasks.cancel_all()
        await self.pool.close()
        kernels = list(self.registry)
        if self.settings.on_stop == "keep":
            for kernel in kernels:
                self.lifecycle.let_go(kernel)
            log.info("left %d kernels running for the next start (on_stop=keep)", len(kernels))
        else:
            await asyncio.gather(*(self.lifecycle.stop_for_good(k) for k in kernels), return_exceptions=True)
            if self.replicas is None or not await self.replicas.ownership.others_alive():
                await self.backend.remove_all()  # not the kernels of other live replicas (issue 11)
        if self.replicas is not None:
            await self.replicas.ownership.leave()  # what it still owns is adopted at once
        self.backend.close()

    # --- kernels --------------------------------------------------------------------------------------------

    async def locate(self, kernel_ref: int | str, *, forwarded: bool = False) -> str | None:
        """Issue 11: the URL of the live replica serving the kernel, or None to serve it here (a kernel whose
        replica is gone is adopted first). Always None for a single gateway."""
        if self.replicas is None:
            return None
        return await self.replicas.locate(kernel_ref, forwarded=forwarded)

    def get(self, kernel_id: int) -> Kernel:
        """The kernel, or KernelNotFound."""
        return self.registry.get(kernel_id)

    def find(self, any_id: str) -> Kernel:
        """A kernel by its seed API id or its Jupyter UUID, or KernelNotFound."""
        return self.registry.find(any_id)

    def kernels_visible_to(self, owns: Callable[[str | None], bool]) -> list[Kernel]:
        return self.registry.visible_to(owns)

    async def start(
        self, owner: str | None = None, runtime: str | None = None, env: dict[str, str] | None = None
    ) -> Kernel:
        """Start a new kernel for ``owner`` (an API key id) in its own container; return once it answers."""
        return await self.lifecycle.start(owner, runtime, env)

    async def shutdown(self, kernel_id: int, reason: str | None = None) -> None:
        """Stop a kernel and remove its container; its cells are gone with it."""
        await self.lifecycle.shutdown(kernel_id, reason)

    async def restart(self, kernel: Kernel) -> None:
        """Replace the kernel's container with a fresh one; its cells stay, marked as not run."""
        await self.lifecycle.restart(kernel)

    async def interrupt(self, kernel: Kernel) -> None:
        """Raise KeyboardInterrupt in whatever the kernel runs (nothing if it has no container now)."""
        if kernel.client is not None:
            await kernel.client.interrupt()

    # --- cells ----------------------------------------------------------------------------------------------

    # ``expected_version``: the notebook version the caller last saw; another one raises VersionConflict.

    async def add_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        return await self.editor.add_cell(kernel, number, code, expected_version=expected_version)

    async def edit_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        return await self.editor.edit_cell(kernel, number, code, expected_version=expected_version)

    async def delete_cell(self, kernel: Kernel, number: int, *, expected_version: int | None = None) -> Cell:
        return await self.editor.delete_cell(kernel, number, expected_version=expected_version)

    async def execute(
        self, kernel: Kernel, code: str, timeout: float | None = None, *, wait: bool = True,
        on_output: OnOutput | None = None, expected_version: int | None = None,
    ) -> RunResult:  # fmt: skip
        """Append ``code`` as the next cell (highest number + 1) and run it; a normal cell afterwards. With
        ``wait=False`` a busy kernel raises KernelBusy before the cell is added."""
        self.refuse_if_busy(kernel, wait)
        cell = await self.add_cell(kernel, kernel.notebook.next_number(), code, expected_version=expected_version)
        return await self.run_cell(kernel, cell.number, timeout, on_output=on_output)

    async def run_cell(
        self, kernel: Kernel, number: int, timeout: float | None = None, *, wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> RunResult:  # fmt: skip
        return await self.runner.run_cell(kernel, number, timeout, wait=wait, on_output=on_output)

    async def run_all(self, kernel: Kernel, timeout: float | None = None, *, wait: bool = True) -> list[RunResult]:
        return await self.runner.run_all(kernel, timeout, wait=wait)

    async def run_with_dependencies(
        self, kernel: Kernel, number: int, timeout: float | None = None, *, wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> list[RunResult]:  # fmt: skip
        return await self.runner.run_with_dependencies(kernel, number, timeout, wait=wait, on_output=on_output)

    async def run_stale(self, kernel: Kernel, timeout: float | None = None, *, wait: bool = True) -> list[RunResult]:
        return await self.runner.run_stale(kernel, timeout, wait=wait)

    def refuse_if_busy(self, kernel: Kernel, wait: bool) -> None:
        """KernelBusy if the caller does not want to wait and other work holds the kernel."""
        self.runner.refuse_if_busy(kernel, wait)

    def start_in_background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` in a task owned by the service: it goes on when the HTTP client that asked goes away."""
        return self.tasks.spawn(work)

    # --- files ----------------------------------------------------------------------------------------------

    async def upload(self, kernel: Kernel, path: str, data: bytes) -> int:
        return await self.files.upload(kernel, path, data)

    async def download(self, kernel: Kernel, path: str) -> bytes:
        return await self.files.download(kernel, path)

    # --- the service's state --------------------------------------------------------------------------------

    @property
    def limits(self) -> dict[str, Any]:
        """The sandbox profile kernels get (image, runtime, limits)."""
        return self.backend.limits

    def pool_status(self) -> dict[str, Any]:
        return {**self.pool.status(), "profile": self.limits}

    async def health(self) -> dict[str, Any]:
        """Raises SandboxUnavailable unless the engine answers."""
        await self.backend.ping()
        return {"status": "ok", "docker": "ok", "kernels": len(self.registry)}
