"""``KernelService``: the core's facade, the only thing the HTTP layers use.

It is built from the ports' adapters (``gateway.main`` wires them) and composes the core's parts: the registry,
the launcher, the warm pool, the lifecycle, the death supervisor, the cell runner and editor, and file transfer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from gateway.errors import KernelDead
from gateway.kernels import recovery
from gateway.kernels.admission import Admission, LocalAdmission, SharedAdmission
from gateway.kernels.culling import cull_forever
from gateway.kernels.editing import CellEditor
from gateway.kernels.execution import CellRunner, RunLimits
from gateway.kernels.files import FileTransfer
from gateway.kernels.janitor import Janitor
from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.launcher import KernelLauncher
from gateway.kernels.leader import LeaderRole
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.moves import KernelMoves
from gateway.kernels.observer import NullObserver
from gateway.kernels.packages import NoPackages
from gateway.kernels.pool import KernelPool
from gateway.kernels.ports import (
    Coordination,
    KernelConnector,
    KernelObserver,
    KernelOwnership,
    KernelPackages,
    KernelStore,
    MovingBackend,
    NodeBackend,
    OnOutput,
    ReplicaPeer,
    SandboxBackend,
    WarmPool,
)
from gateway.kernels.registry import KernelRegistry, new_kernel_id
from gateway.kernels.replicas import ReplicaCoordinator
from gateway.kernels.shared_pool import SharedKernelPool
from gateway.kernels.supervisor import DeathSupervisor
from gateway.kernels.tasks import TaskSet
from gateway.notebook import Cell
from gateway.notebook.outputs import Output
from gateway.settings import Settings

log = logging.getLogger(__name__)


class KernelService:
    """Every kernel of this gateway instance. Create one per process; ``await start_up()`` before use.

    With a ``coordination`` (PostgreSQL: several replicas of one deployment), admission is counted in the database,
    the warm pool is shared, and the leader among the replicas fills it and sweeps orphans (issue 11).
    """

    def __init__(
        self,
        settings: Settings,
        backend: SandboxBackend,
        connector: KernelConnector,
        store: KernelStore,
        observer: KernelObserver | None = None,
        packages: KernelPackages | None = None,
        coordination: Coordination | None = None,
        ownership: KernelOwnership | None = None,
    ) -> None:
        """``ownership``: this gateway is one of several replicas on the store's database (issue 11)."""
        self.settings = settings
        self.observer: KernelObserver = observer or NullObserver()
        self.packages: KernelPackages = packages or NoPackages()
        self.backend = backend
        self.store = store
        self.tasks = TaskSet()
        self.registry = KernelRegistry(settings.max_kernels, settings.max_kernels_per_key)
        launcher = KernelLauncher(backend, connector, settings.kernel_start_timeout)
        self.coordination = coordination
        self.leader: LeaderRole | None = None
        self.janitor: Janitor | None = None
        self.pool: WarmPool
        admission: Admission
        if coordination is None:
            self.pool = KernelPool(
                launcher, new_kernel_id, size=settings.pool_size, parallel=settings.pool_parallel_starts,
                runtime=settings.runtime,
            )  # fmt: skip
            admission = LocalAdmission(self.registry)
        else:
            self.leader = LeaderRole(coordination, settings.coordination_interval)
            pool = SharedKernelPool(
                launcher, coordination, self.leader, new_kernel_id, size=settings.pool_size,
                parallel=settings.pool_parallel_starts, runtime=settings.runtime,
                interval=settings.coordination_interval,
            )  # fmt: skip
            ttl = pending_start_ttl(settings)
            self.janitor = Janitor(launcher, coordination, self.leader, filler=pool.filler, ttl=ttl)
            self.pool = pool
            admission = SharedAdmission(
                coordination, max_kernels=settings.max_kernels, max_kernels_per_key=settings.max_kernels_per_key,
                ttl=ttl,
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
            images=settings.images,
            packages=self.packages,
            admission=admission,
        )
        self.supervisor = DeathSupervisor(self.registry, self.lifecycle, self.tasks)
        self.moves = KernelMoves(self.registry, self.lifecycle, self.supervisor, self.tasks, settings.reattach_timeout)
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
        await self.backend.check_ready(settings.runtimes, settings.images)
        self.backend.watch_deaths(
            asyncio.get_running_loop(), self.supervisor.container_died, self.supervisor.events_resumed
        )
        if isinstance(self.backend, MovingBackend):
            self.backend.watch_moves(self.moves.kernel_moved)
        others = False
        if self.replicas is not None:  # issue 11: take only what no live replica owns
            await self.replicas.join()
            others = await self.replicas.ownership.others_alive()
        if self.coordination is not None and self.replicas is not None and not others:
            # The whole deployment was down (killed: a clean stop of the last replica removed it): the warm pool it
            # left is removed below, as a single gateway's is, not handed out.
            for kernel_id, _, _ in await self.coordination.unclaimed():
                await self.coordination.drop(kernel_id)
        interrupted = await self.store.interrupt_open_runs(settings.instance, recovery.INTERRUPTED_DETAIL)
        records = await self.store.load_kernels(settings.instance)
        containers = await self.backend.list_own()
        deployment = None if self.coordination is None else await self.coordination.known_kernel_ids()
        unlisted: set[int] = set()
        if isinstance(self.backend, NodeBackend):
            listed = self.backend.listed()
            unlisted = {r.id for r in records if self.backend.node_of(r.sandbox) not in listed}
            if unlisted:
                log.warning("%d kernels are on nodes that did not answer yet: re-attaching tells", len(unlisted))
        plan = recovery.plan(
            records,
            containers,
            {run.kernel_id for run in interrupted},
            settings.mem_limit_mb,
            deployment=deployment,
            keep_unknown=others,
            unlisted=unlisted,
        )
        await self.packages.start_up({i for r in records for i in (r.id, r.sandbox_id)})  # re-attached: reinstall
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
        if self.leader is not None and self.janitor is not None:
            await self.leader.check()  # the first replica up leads at once: its pool starts filling now
            self.leader.start()
            self.tasks.spawn(self.janitor.run(settings.cull_interval), name="janitor")
        self.pool.start()

    async def shut_down(self) -> None:
        """Clean stop. ``on_stop=keep``: let go of the kernels, leaving them running for the next start.
        ``on_stop=shutdown``: remove their containers; their records and cells stay, marked dead. With several
        replicas (``coordination``), only this replica's kernels: the shared pool stays for the others."""
        await self.tasks.cancel_all()
        await self.pool.close()
        if self.leader is not None:
            await self.leader.close()
        kernels = list(self.registry)
        if self.settings.on_stop == "keep":
            for kernel in kernels:
                self.lifecycle.let_go(kernel)
            log.info("left %d kernels running for the next start (on_stop=keep)", len(kernels))
        else:
            await asyncio.gather(*(self.lifecycle.stop_for_good(k) for k in kernels), return_exceptions=True)
            others = self.replicas is not None and await self.replicas.ownership.others_alive()
            if not others:  # the last replica (or the only one) leaves nothing running, shared pool included
                await self.backend.remove_all()
        if self.replicas is not None:
            await self.replicas.ownership.leave()  # what it still owns is adopted at once
        self.backend.close()
        self.packages.close()

    # --- kernels --------------------------------------------------------------------------------------------

    async def locate(self, kernel_ref: int | str, *, forwarded: bool = False) -> str | None:
        """Issue 11: the URL of the live replica serving the kernel, or None to serve it here (a kernel whose
        replica is gone is adopted first). Always None for a single gateway."""
        if self.replicas is None:
            return None
        return await self.replicas.locate(kernel_ref, forwarded=forwarded)

    async def served_by(self, kernel_ref: int | str, owner_url: str) -> bool:
        """Issue 11: whether the live replica at ``owner_url`` still serves the kernel (False for one gateway)."""
        return self.replicas is not None and await self.replicas.served_by(kernel_ref, owner_url)

    def get(self, kernel_id: int) -> Kernel:
        """The kernel, or KernelNotFound."""
        return self.registry.get(kernel_id)

    def find(self, any_id: str) -> Kernel:
        """A kernel by its seed API id or its Jupyter UUID, or KernelNotFound."""
        return self.registry.find(any_id)

    def kernels_visible_to(self, owns: Callable[[str | None], bool]) -> list[Kernel]:
        return self.registry.visible_to(owns)

    async def other_replicas(self) -> list[ReplicaPeer]:
        """Issue 11: the other live replicas of the deployment (none for a single gateway)."""
        return [] if self.replicas is None else await self.replicas.ownership.peers()

    async def kernels_stored_elsewhere(
        self, answered: Collection[str], owns: Callable[[str | None], bool]
    ) -> list[Kernel]:
        """Issue 11: the kernels ``owns`` accepts that neither this replica nor a replica of ``answered`` serves
        (their replica did not answer, or died and they are not adopted yet), as last stored: not served here."""
        if self.replicas is None:
            return []
        records = await self.replicas.ownership.stored_elsewhere(answered)
        return [recovery.as_stored(record) for record in records if owns(record.owner)]

    async def start(
        self, owner: str | None = None, runtime: str | None = None, env: dict[str, str] | None = None,
        image: str | None = None,
    ) -> Kernel:  # fmt: skip
        """Start a new kernel for ``owner`` (an API key id) in its own container; return once it answers.
        ``image``: one of the allowed images (JUPYCELL_ALLOWED_IMAGES), None for the deployment's."""
        return await self.lifecycle.start(owner, runtime, env, image)

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

    # --- packages on demand (issue 13) -----------------------------------------------------------------------

    async def install_packages(self, kernel: Kernel, requirements: list[str]) -> dict[str, Any]:
        """Fetch ``requirements`` (wheels only, with their dependencies) and install them in the kernel, after the
        work queued before; importable at once and again after a restart. Raises KernelDead, PackageError."""
        async with kernel.lock:
            await self.lifecycle.settled(kernel)
            await kernel.external_finished()
            if not kernel.alive or kernel.client is None:
                raise KernelDead(kernel.id, kernel.last_death)
            kernel.touch()
            return await self.packages.install(kernel, requirements)

    async def prefetch(self, kernel: Kernel, code: str) -> Output | None:
        """Fetch what ``code``'s ``%pip install`` lines ask for before a websocket sends it (caller holds the
        kernel's lock); None, or the refusal as an ``error`` output."""
        return await self.packages.before_run(kernel, code)

    def installed_packages(self, kernel: Kernel) -> dict[str, Any]:
        """What the kernel asked for, and the wheels fetched for it."""
        return self.packages.installed(kernel.id)

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


def pending_start_ttl(settings: Settings) -> float:
    """How long a pending start counts against the limits across replicas: past it, its replica is taken as dead
    mid-start. Longer than any start can take (the kernel's first answer is bounded by kernel_start_timeout)."""
    return 2 * settings.kernel_start_timeout + 60
