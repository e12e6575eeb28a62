"""The gateway's live kernels: start, run cells, recover from deaths, shut down.

One ``Kernel`` per kernel id: its container, its ZMQ client, its notebook and a lock that makes executions on it
run one at a time, in arrival order. Different kernels never wait for each other.

Every change a caller is told about is in the store first (kernel registry, cells, outputs); a restarted gateway
finds its kernels again there (see ``gateway.kernels.reconcile``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from gateway.errors import (
    CellNotFound,
    FileTransferFailed,
    KernelBusy,
    KernelDead,
    KernelNotFound,
    KernelStartFailed,
    RuntimeNotAllowed,
    TooManyKernels,
)
from gateway.kernels.client import KernelClient, KernelGone, KernelUnresponsive
from gateway.kernels.connection import host_view, new_connection_info, prepare_socket_dir, seal_socket_dir
from gateway.kernels.culling import cull_forever
from gateway.kernels.files import KernelFiles
from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.pool import KernelPool
from gateway.notebook import Cell
from gateway.notebook.outputs import Output, OutputCollector
from gateway.sandbox import DockerSandbox
from gateway.settings import Settings
from gateway.store import KernelRecord, Store

log = logging.getLogger(__name__)

# Called with (cell number, output) as each output of a run arrives (see OutputCollector's on_output).
OnOutput = Callable[[int, Output], None]

# Largest integer a JSON client (JavaScript included) reads exactly.
_MAX_KERNEL_ID = 2**53 - 1
_MIN_KERNEL_ID = 10**9


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Done callback of background runs: nobody may be left to read their exception, so log it."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("background run ended with %s: %s", type(error).__name__, error)


def stale_flags(kernel: Kernel) -> dict[int, bool]:
    return {number: cell.stale for number, cell in kernel.notebook.cells.items()}


def stale_changes(kernel: Kernel, before: dict[int, bool]) -> dict[int, bool]:
    """Cells whose ``stale`` flag changed since ``before`` (a snapshot of ``stale_flags``)."""
    return {n: c.stale for n, c in kernel.notebook.cells.items() if n in before and before[n] != c.stale}


def new_kernel_id() -> int:
    """A random, unguessable kernel id that stays a plain JSON integer."""
    return _MIN_KERNEL_ID + secrets.randbelow(_MAX_KERNEL_ID - _MIN_KERNEL_ID)


class KernelManager:
    """Owns every kernel of this gateway instance. Create one per process, ``await start_up()`` before use."""

    def __init__(self, settings: Settings, sandbox: DockerSandbox, store: Store) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.store = store
        self.kernels: dict[int, Kernel] = {}
        self.pool = KernelPool(settings, sandbox, new_kernel_id)
        self._background: set[asyncio.Task[Any]] = set()
        # Why recently culled kernels were shut down, so a caller asking for one learns what happened.
        self._shut_down_because: OrderedDict[int, str] = OrderedDict()

    # --- gateway lifecycle --------------------------------------------------------------------------------

    async def start_up(self) -> None:
        """Check the engine, follow container deaths, then take back what an earlier run of this instance left:
        re-attach its live kernels, mark the others dead, remove containers nobody knows."""
        from gateway.kernels.reconcile import reconcile  # it builds on this module

        await self.sandbox.check_ready(self.settings.runtimes)
        self.sandbox.watch_deaths(asyncio.get_running_loop(), self._on_container_death, self._on_events_resumed)
        await reconcile(self)
        if self.settings.idle_timeout or self.settings.max_lifetime:
            self.start_in_background(
                cull_forever(
                    lambda: self.kernels.values(),
                    self.shutdown,
                    idle_timeout=self.settings.idle_timeout,
                    max_lifetime=self.settings.max_lifetime,
                    interval=self.settings.cull_interval,
                )
            )
        self.pool.start()

    async def shut_down(self) -> None:
        """Clean stop. ``on_stop=keep``: let go of the kernels, leaving them running for the next start.
        ``on_stop=shutdown``: remove their containers; their records and cells stay, marked dead."""
        for task in list(self._background):
            task.cancel()
        await self.pool.close()
        kernels = list(self.kernels.values())
        if self.settings.on_stop == "keep":
            for kernel in kernels:
                if kernel.client is not None:
                    kernel.client.close()
                    kernel.client = None
            log.info("left %d kernels running for the next start (on_stop=keep)", len(kernels))
        else:
            await asyncio.gather(*(self._stop_for_good(k) for k in kernels), return_exceptions=True)
            await self.sandbox.remove_all()
        self.sandbox.close()

    async def _stop_for_good(self, kernel: Kernel) -> None:
        was_alive = kernel.state != "dead"
        kernel.state = "dead"
        await self._teardown(kernel)
        if was_alive:
            kernel.last_death = "the gateway was stopped (on_stop=shutdown)"
            await self.store.update_kernel(kernel.id, state="dead", last_death=kernel.last_death, container_id="")

    # --- kernels ------------------------------------------------------------------------------------------

    def get(self, kernel_id: int) -> Kernel:
        try:
            return self.kernels[kernel_id]
        except KeyError:
            raise KernelNotFound(kernel_id, self._shut_down_because.get(kernel_id)) from None

    async def start(
        self, owner: str | None = None, runtime: str | None = None, env: dict[str, str] | None = None
    ) -> Kernel:
        """Start a new kernel for ``owner`` (an API key id) in its own container; return once it answers.

        Claimed from the warm pool when it holds one of this profile, started cold otherwise. ``runtime`` must be
        one of the allowed runtimes (default: the deployment's). Raises TooManyKernels when the gateway's or the
        owner's kernel limit is reached. ``env`` is set in the container (callers check the names); a kernel with
        an environment of its own always starts a fresh container (never from the pool).
        """
        runtime = runtime or self.settings.runtime
        if runtime not in self.settings.runtimes:
            raise RuntimeNotAllowed(runtime, self.settings.runtimes)
        self._check_capacity(owner)
        ready = self.pool.claim() if runtime == self.pool.profile.runtime and not env else None
        if ready is not None:  # made for this id: container, labels and sockets are already the kernel's
            kernel = Kernel(
                id=ready.kernel_id,
                socket_dir=ready.socket_dir,
                owner=owner,
                runtime=runtime,
                client=ready.client,
                container_id=ready.container_id,
                connection_info=ready.connection_info,
                state="idle",
            )
            self.kernels[kernel.id] = kernel
            try:
                await self.store.add_kernel(self._record(kernel))
            except BaseException:
                self.kernels.pop(kernel.id, None)
                await self._teardown(kernel)
                raise
            kernel.notify("started")
            return kernel
        kernel_id = new_kernel_id()
        kernel = Kernel(
            id=kernel_id,
            socket_dir=self.settings.instance_dir / str(kernel_id),
            owner=owner,
            runtime=runtime,
            env=dict(env or {}),
        )
        self.kernels[kernel_id] = kernel
        try:
            await self._launch(kernel)
            await self.store.add_kernel(self._record(kernel))
        except BaseException:
            self.kernels.pop(kernel_id, None)
            await self._teardown(kernel)
            raise
        return kernel

    def _check_capacity(self, owner: str | None) -> None:
        """Kernel limits: of the whole gateway, and per API key (not applied when the API has no keys)."""
        limit = self.settings.max_kernels
        if len(self.kernels) >= limit:
            raise TooManyKernels(f"Kernel limit reached: this gateway runs at most {limit} kernels (max_kernels).")
        limit = self.settings.max_kernels_per_key
        if owner is not None and sum(k.owner == owner for k in self.kernels.values()) >= limit:
            raise TooManyKernels(
                f"Kernel limit reached: key {owner!r} may run at most {limit} kernels (max_kernels_per_key); "
                "shut one down first."
            )

    async def shutdown(self, kernel_id: int, reason: str | None = None) -> None:
        """Stop a kernel and remove its container. Its cells are gone with it. A ``reason`` is remembered (for a
        while) and told to whoever asks for the kernel afterwards."""
        kernel = self.kernels.pop(kernel_id, None)
        if kernel is None:
            raise KernelNotFound(kernel_id)
        if reason:
            self._shut_down_because[kernel_id] = reason
            while len(self._shut_down_because) > 10_000:
                self._shut_down_because.popitem(last=False)
        kernel.state = "dead"
        kernel.last_death = f"shut down because {reason}" if reason else "shut down"
        if kernel.client is not None:
            kernel.client.mark_dead(kernel.last_death)  # a run in progress ends now, as "died"
        await self._settled(kernel)  # a container being created must exist before it can be removed
        await self._teardown(kernel)
        kernel.notify("shut down")
        await self.store.delete_kernel(kernel_id)

    async def interrupt(self, kernel: Kernel) -> None:
        """Issue 12 (the facade's name): raise KeyboardInterrupt in the kernel's running cell, if it has a client."""
        if kernel.client is not None:
            await kernel.client.interrupt()

    async def restart(self, kernel: Kernel) -> None:
        """Replace the kernel's container with a fresh one; its cells stay, marked as not run."""
        async with kernel.lock:
            await self._settled(kernel)
            await self._replace(kernel)

    # --- cells --------------------------------------------------------------------------------------------

    # Each change is stored (with the staleness it caused in other cells) before the caller hears of it.

    # Issue 12: ``expected_version`` (None: no check) is checked and the version bumped before the first await,
    # so two writers can never both pass the check; a mismatch raises VersionConflict with nothing changed.

    async def add_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        kernel.notebook.expect_version(expected_version)  # issue 12
        before = stale_flags(kernel)
        cell = kernel.notebook.add(number, code)
        kernel.notebook.version += 1  # issue 12
        try:
            await self.store.add_cell(
                kernel.id, cell, stale=stale_changes(kernel, before), version=kernel.notebook.version
            )
        except BaseException:
            kernel.notebook.delete(number)
            raise
        return cell

    async def edit_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        kernel.notebook.expect_version(expected_version)  # issue 12
        before = stale_flags(kernel)
        cell = kernel.notebook.edit(number, code)
        kernel.notebook.version += 1  # issue 12
        await self.store.save_cell(
            kernel.id, cell, stale=stale_changes(kernel, before), version=kernel.notebook.version
        )
        return cell

    async def delete_cell(self, kernel: Kernel, number: int, *, expected_version: int | None = None) -> Cell:
        kernel.notebook.expect_version(expected_version)  # issue 12
        before = stale_flags(kernel)
        cell = kernel.notebook.delete(number)
        kernel.notebook.version += 1  # issue 12
        await self.store.delete_cell(
            kernel.id, number, stale=stale_changes(kernel, before), version=kernel.notebook.version
        )
        return cell

    async def execute(
        self,
        kernel: Kernel,
        code: str,
        timeout: float | None = None,
        *,
        wait: bool = True,
        on_output: OnOutput | None = None,
        expected_version: int | None = None,
    ) -> RunResult:
        """Issue 12: append ``code`` as the next cell (highest number + 1) and run it; a normal cell afterwards.

        With ``wait=False`` a busy kernel raises KernelBusy before the cell is added.
        """
        self.claim(kernel, wait)
        cell = await self.add_cell(kernel, kernel.notebook.next_number(), code, expected_version=expected_version)
        return await self.run_cell(kernel, cell.number, timeout, on_output=on_output)

    # --- running cells ------------------------------------------------------------------------------------
    # Every run waits for the kernel's earlier runs (its lock), unless ``wait`` is False: then a kernel that is
    # already running something raises KernelBusy at once.

    async def run_cell(
        self,
        kernel: Kernel,
        number: int,
        timeout: float | None = None,
        *,
        wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> RunResult:
        """Run one cell."""
        self.claim(kernel, wait)
        async with kernel.lock:
            cell = kernel.notebook.get(number)
            return await self._run(kernel, cell, timeout, on_output)

    async def run_all(self, kernel: Kernel, timeout: float | None = None, *, wait: bool = True) -> list[RunResult]:
        """Run every cell in ascending number; stop after the first that does not end ``ok``."""
        self.claim(kernel, wait)
        async with kernel.lock:
            return await self._run_in_order(kernel, [c.number for c in kernel.notebook.in_order()], timeout)

    async def run_with_dependencies(
        self,
        kernel: Kernel,
        number: int,
        timeout: float | None = None,
        *,
        wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> list[RunResult]:
        """Re-run, in order, the cells ``number`` depends on that are not up to date, then ``number`` itself.

        Stops at the first run that does not end ``ok``; the last result is the cell's own when all went well.
        """
        self.claim(kernel, wait)
        async with kernel.lock:
            kernel.notebook.get(number)
            order = [c.number for c in kernel.notebook.dependencies(number)]
            results = await self._run_in_order(kernel, order, timeout, on_output, only_outdated=True, then=number)
            if not results:  # deleted while this run waited for the kernel
                raise CellNotFound(number)
            return results

    async def run_stale(self, kernel: Kernel, timeout: float | None = None, *, wait: bool = True) -> list[RunResult]:
        """Bring the notebook up to date: run, in order, every cell that is stale or has not run since the kernel
        started (a run makes the cells after it that depend on it stale, so they run too)."""
        self.claim(kernel, wait)
        async with kernel.lock:
            order = [c.number for c in kernel.notebook.in_order()]
            return await self._run_in_order(kernel, order, timeout, only_outdated=True)

    # --- files in the working directory ------------------------------------------------------------------

    async def upload(self, kernel: Kernel, path: str, data: bytes) -> int:
        """Write ``data`` to ``path`` under the kernel's working directory (after runs queued before it)."""
        async with kernel.lock:
            return await self._transfer(kernel, lambda files: files.upload(path, data))

    async def download(self, kernel: Kernel, path: str) -> bytes:
        """The bytes of ``path`` under the kernel's working directory (after runs queued before it)."""
        async with kernel.lock:
            return await self._transfer(kernel, lambda files: files.download(path))

    async def _transfer(self, kernel: Kernel, operation: Callable[[KernelFiles], Coroutine[Any, Any, Any]]) -> Any:
        await self._settled(kernel)
        if kernel.state == "dead" or kernel.client is None:
            raise KernelDead(f"Kernel {kernel.id} is dead ({kernel.last_death}); restart it.")
        kernel.touch()
        try:
            return await operation(KernelFiles(kernel.client, int(self.settings.max_file_mb * 2**20)))
        except KernelUnresponsive as error:
            raise FileTransferFailed(f"The kernel did not answer the file transfer: {error}.") from None
        except KernelGone:
            if self.kernels.get(kernel.id) is not kernel:
                raise FileTransferFailed(f"The kernel was {kernel.last_death} during the file transfer.") from None
            kernel.last_death = f"{await self._death_cause(kernel)} during a file transfer"
            await self._replace(kernel)
            raise FileTransferFailed(f"The kernel died ({kernel.last_death}); it was restarted fresh.") from None
        finally:
            kernel.touch()

    def start_in_background(self, run: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``run`` in a task owned by the manager: it goes on when the HTTP client that asked goes away."""
        task = asyncio.create_task(run)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    @staticmethod
    def claim(kernel: Kernel, wait: bool) -> None:
        """Raise KernelBusy if the caller does not want to wait and another run holds the kernel."""
        if not wait and kernel.lock.locked():
            raise KernelBusy(kernel.id)

    async def _run_in_order(
        self,
        kernel: Kernel,
        numbers: list[int],
        timeout: float | None,
        on_output: OnOutput | None = None,
        *,
        only_outdated: bool = False,
        then: int | None = None,
    ) -> list[RunResult]:
        """Run the cells ``numbers`` (skipping deleted ones, and up-to-date ones if ``only_outdated``), then
        ``then``; stop after the first run that does not end ``ok``. Caller holds the kernel's lock."""
        results: list[RunResult] = []
        for number in [*numbers, *([then] if then is not None else [])]:
            cell = kernel.notebook.cells.get(number)
            if cell is None or (only_outdated and number != then and cell.up_to_date):
                continue  # up-to-date is checked as we go: each run can make later cells stale
            result = await self._run(kernel, cell, timeout, on_output)
            results.append(result)
            if result.status != "ok":
                break
        return results

    async def _run(
        self, kernel: Kernel, cell: Cell, timeout: float | None, on_output: OnOutput | None = None
    ) -> RunResult:
        """Run the cell, recorded in the store: in flight (outputs so far, in batches), then its outcome and the
        cell's new outputs in one transaction, committed before the caller sees them."""
        await self._settled(kernel)
        if kernel.state == "dead" or kernel.client is None:
            raise KernelDead(f"Kernel {kernel.id} is dead ({kernel.last_death}); restart it.")
        collector = OutputCollector(
            self.settings.max_output_bytes,
            self.settings.max_outputs,
            max_image_bytes=self.settings.max_image_bytes,
            on_output=None if on_output is None else (lambda output: on_output(cell.number, output)),
        )
        run_id, started_at = uuid.uuid4().hex, time.time()
        stale_before = stale_flags(kernel)
        flusher = asyncio.create_task(self._record_in_flight(run_id, kernel, cell, collector, started_at))
        try:
            result = await self._execute(kernel, cell, timeout, collector)
        except Exception as error:
            self.store.abandon_run(run_id, f"the run failed: {error}")
            raise
        finally:
            flusher.cancel()
        await self.store.finish_run(
            run_id,
            kernel.id,
            cell,
            truncated=result.truncated,
            detail=result.detail,
            last_activity=kernel.last_activity,
            started_at=started_at,
            stale=stale_changes(kernel, stale_before),
        )
        return result

    async def _execute(
        self, kernel: Kernel, cell: Cell, timeout: float | None, collector: OutputCollector
    ) -> RunResult:
        assert kernel.client is not None
        timeout = self.settings.run_timeout if timeout is None else timeout
        kernel.state = "busy"
        kernel.touch()
        started = time.time()
        try:
            execution = await kernel.client.execute(cell.code, timeout, collector, self.settings.interrupt_grace)
            result = RunResult(
                cell, execution.status, execution.execution_count, execution.outputs, execution.truncated
            )
            if execution.status == "timeout":
                result.detail = f"deadline of {timeout:g} s passed; the kernel was interrupted"
        except KernelUnresponsive as error:
            result = self._lost_run(
                cell,
                "timeout",
                f"deadline of {timeout:g} s passed and the kernel was {error}; it is replaced by a fresh one",
                collector,
            )
            self._replace_soon(kernel)
        except KernelGone:
            if self.kernels.get(kernel.id) is not kernel:  # shut down under the run: nothing to restart
                detail = f"the kernel was {kernel.last_death} while running cell {cell.number}"
                return self._finish(kernel, cell, started, self._lost_run(cell, "died", detail, collector))
            cause = await self._death_cause(kernel)
            result = self._lost_run(
                cell,
                "died",
                f"the kernel died: {cause} while running cell {cell.number}; it is restarted fresh",
                collector,
            )
            kernel.last_death = f"{cause} while running cell {cell.number}"
            self._replace_soon(kernel)
        finally:
            kernel.touch()
            if kernel.state == "busy":
                kernel.state = "idle"
        return self._finish(kernel, cell, started, result)

    @staticmethod
    def _finish(kernel: Kernel, cell: Cell, started: float, result: RunResult) -> RunResult:
        """Store the run's outputs and record on the cell; mark what depends on it stale."""
        cell.outputs, cell.execution_count, cell.status = result.outputs, result.execution_count, result.status
        cell.started, cell.ended = started, time.time()
        kernel.notebook.ran(cell)
        return result

    async def _record_in_flight(
        self, run_id: str, kernel: Kernel, cell: Cell, collector: OutputCollector, started_at: float
    ) -> None:
        """A run still going after ``output_flush_interval`` is recorded as in flight, and from then on its outputs
        so far are written at that interval (when there are new ones). Shorter runs (most) cost no write but the
        one at their end."""
        await asyncio.sleep(self.settings.output_flush_interval)
        self.store.begin_run(run_id, kernel.id, cell, started_at)
        written = 0
        while True:
            if collector.changes != written:
                written = collector.changes
                self.store.save_partial_outputs(run_id, collector.outputs(), collector.truncated)
            await asyncio.sleep(self.settings.output_flush_interval)

    @staticmethod
    def _lost_run(cell: Cell, status: str, detail: str, collector: OutputCollector) -> RunResult:
        outputs = collector.outputs()
        outputs.append(
            {
                "output_type": "error",
                "ename": "KernelDied" if status == "died" else "Timeout",
                "evalue": detail,
                "traceback": [],
            }
        )
        return RunResult(cell, status, None, outputs, collector.truncated, detail, state_kept=False)

    # --- internals ----------------------------------------------------------------------------------------

    def connect(self, kernel: Kernel) -> KernelClient:
        """A client for the kernel's sockets, with the kernel's connection info (host view)."""
        assert kernel.connection_info is not None
        kernel.client = KernelClient(kernel.connection_info, max_message_bytes=self.settings.max_message_mb * 2**20)
        return kernel.client

    def _record(self, kernel: Kernel) -> KernelRecord:
        info = kernel.connection_info or {}
        connection = {k: v for k, v in info.items() if k != "key"}
        return KernelRecord(
            id=kernel.id,
            uuid=kernel.uuid,
            instance=self.settings.instance,
            owner=kernel.owner,
            runtime=kernel.runtime,
            env=kernel.env,
            container_name=self.sandbox.container_name(kernel.id),
            container_id=kernel.container_id,
            connection=connection,
            hmac_key=info.get("key", ""),
            limits=asdict(self.sandbox.spec),
            state=kernel.state,
            last_death=kernel.last_death,
            created_at=kernel.created,
            last_activity_at=kernel.last_activity,
        )

    async def _launch(self, kernel: Kernel) -> None:
        """Create the socket directory, the container and the client; wait until the kernel answers."""
        info = new_connection_info()
        await asyncio.to_thread(prepare_socket_dir, kernel.socket_dir, info, self.settings.kernel_uid)
        kernel.container_id = await self.sandbox.start(kernel.id, kernel.socket_dir, kernel.runtime, kernel.env)
        kernel.connection_info = host_view(info, kernel.socket_dir)
        self.connect(kernel)
        try:
            await kernel.client.wait_ready(self.settings.kernel_start_timeout)
        except (KernelUnresponsive, KernelGone) as error:
            logs = await self.sandbox.logs(kernel.id)
            raise KernelStartFailed(
                f"Kernel container did not become ready: {error}. Container log:\n{logs}"
            ) from error
        await asyncio.to_thread(seal_socket_dir, kernel.socket_dir)
        kernel.state = "idle"
        kernel.touch()
        kernel.notify("started")

    async def _teardown(self, kernel: Kernel) -> None:
        """Close the client, remove the container and the socket directory (idempotent)."""
        if kernel.client is not None:
            kernel.client.close()
            kernel.client = None
        if kernel.connection_info is not None:
            kernel.connection_info = None
            kernel.notify("stopped")
        kernel.container_id = ""
        await self.sandbox.remove(kernel.id)
        await asyncio.to_thread(shutil.rmtree, kernel.socket_dir, True)

    async def _replace(self, kernel: Kernel, *, forget: bool = True) -> None:
        """Swap in a fresh container (new key, empty memory). Caller holds the kernel's lock, or is the task
        ``_replace_soon`` started (that everyone else waits for)."""
        kernel.state = "starting"
        if forget:
            self._forget_runs(kernel)
        await self._teardown(kernel)
        try:
            await self._launch(kernel)
        except BaseException as error:
            kernel.state = "dead"
            kernel.last_death = f"could not be restarted: {error}"
            await asyncio.shield(
                self.store.update_kernel(kernel.id, state="dead", last_death=kernel.last_death, container_id="")
            )
            raise
        record = self._record(kernel)
        await self.store.kernel_replaced(
            kernel.id,
            kernel.notebook.in_order(),
            container_id=record.container_id,
            connection=record.connection,
            hmac_key=record.hmac_key,
            limits=record.limits,
            state=kernel.state,
            last_death=kernel.last_death,
        )

    @staticmethod
    def _forget_runs(kernel: Kernel) -> None:
        for cell in kernel.notebook.in_order():
            cell.forget_run()

    def _replace_soon(self, kernel: Kernel) -> None:
        """Start replacing the container and return at once, so a run that lost its kernel answers without
        waiting for a new container. Whoever uses the kernel next waits for it first (``_settled``)."""
        self._forget_runs(kernel)
        kernel.state = "starting"
        task = self.start_in_background(self._replace(kernel, forget=False))
        kernel.replacing = task

        def done(_: asyncio.Task[None]) -> None:
            if kernel.replacing is task:
                kernel.replacing = None

        task.add_done_callback(done)

    @staticmethod
    async def _settled(kernel: Kernel) -> None:
        """Wait for a replacement started by an earlier run to end (its failure leaves the kernel dead)."""
        if kernel.replacing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(kernel.replacing)

    async def _death_cause(self, kernel: Kernel) -> str:
        exit_status = await self.sandbox.exit_status(kernel.id)
        if exit_status is None:
            return "its container stopped answering"
        return exit_status.describe(self.settings.mem_limit_mb)

    def _on_events_resumed(self) -> None:
        """The engine's event stream broke and resumed: deaths may have gone unseen; check every container."""
        task = asyncio.create_task(self._check_containers())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _check_containers(self) -> None:
        for kernel in list(self.kernels.values()):
            if kernel.client is not None and await self.sandbox.exit_status(kernel.id) is not None:
                self._on_container_death(kernel.id, kernel.container_id)

    def _on_container_death(self, kernel_id: int, container_id: str) -> None:
        """Engine event (on the loop): a container of ours died. Wake a run waiting on it, or recover."""
        kernel = self.kernels.get(kernel_id)
        if kernel is None:  # an unclaimed warm-pool kernel (or one already shut down)
            self.pool.discard(container_id)
            return
        if kernel is None or kernel.client is None or kernel.container_id != container_id:
            return  # not ours any more: shut down or already replaced
        kernel.client.mark_dead("container died")
        if not kernel.lock.locked():
            task = asyncio.create_task(self._recover_idle(kernel, kernel.client))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _recover_idle(self, kernel: Kernel, dead_client: KernelClient) -> None:
        async with kernel.lock:
            if kernel.client is not dead_client:
                return  # a run already noticed and replaced it
            kernel.state = "dead"
            kernel.last_death = await self._death_cause(kernel)
            log.warning("kernel %d died while idle: %s; restarting it", kernel.id, kernel.last_death)
            try:
                await self._replace(kernel)
            except Exception:
                log.exception("kernel %d could not be restarted", kernel.id)
