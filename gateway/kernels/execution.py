"""Running cells: one run at a time per kernel, in arrival order, each recorded in the store before its caller sees it.

A run's deadline is enforced with escalation: at the deadline the kernel gets an interrupt request, shortly after
a SIGINT through the engine if it is still busy, then ``interrupt_grace`` seconds; a kernel still busy after that
is replaced (its state is lost, the run says so). A kernel lost during a run goes through the one death policy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from gateway.errors import CellNotFound, KernelBusy, KernelDead, KernelGone, KernelUnresponsive
from gateway.kernels.kernel import Kernel, KernelState, RunResult, RunStatus
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.moves import MOVED, moved_away
from gateway.kernels.ports import KernelStore, OnOutput
from gateway.kernels.supervisor import DeathSupervisor
from gateway.notebook import Cell
from gateway.notebook.outputs import OutputCollector


@dataclass(frozen=True)
class RunLimits:
    """Deadlines and output caps of runs (from the settings)."""

    run_timeout: float
    interrupt_grace: float
    max_output_bytes: int
    max_outputs: int
    max_image_bytes: int
    output_flush_interval: float


class CellRunner:
    """Runs cells of kernels. Every run waits for the kernel's earlier work (its lock), unless ``wait`` is False:
    then a kernel that is already busy raises KernelBusy at once."""

    def __init__(
        self, limits: RunLimits, store: KernelStore, lifecycle: KernelLifecycle, supervisor: DeathSupervisor
    ) -> None:
        self.limits = limits
        self.store = store
        self.lifecycle = lifecycle
        self.supervisor = supervisor

    @staticmethod
    def refuse_if_busy(kernel: Kernel, wait: bool) -> None:
        """Raise KernelBusy if the caller does not want to wait and other work holds the kernel."""
        if not wait and kernel.busy:
            raise KernelBusy(kernel.id)

    async def run_cell(
        self, kernel: Kernel, number: int, timeout: float | None = None, *, wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> RunResult:  # fmt: skip
        """Run one cell."""
        self.refuse_if_busy(kernel, wait)
        async with kernel.lock:
            cell = kernel.notebook.get(number)
            return await self._run(kernel, cell, timeout, on_output)

    async def run_all(self, kernel: Kernel, timeout: float | None = None, *, wait: bool = True) -> list[RunResult]:
        """Run every cell in ascending number; stop after the first that does not end ``ok``."""
        self.refuse_if_busy(kernel, wait)
        async with kernel.lock:
            return await self._run_in_order(kernel, [c.number for c in kernel.notebook.in_order()], timeout)

    async def run_with_dependencies(
        self, kernel: Kernel, number: int, timeout: float | None = None, *, wait: bool = True,
        on_output: OnOutput | None = None,
    ) -> list[RunResult]:  # fmt: skip
        """Re-run, in order, the cells ``number`` depends on that are not up to date, then ``number`` itself.

        Stops at the first run that does not end ``ok``; the last result is the cell's own when all went well.
        """
        self.refuse_if_busy(kernel, wait)
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
        self.refuse_if_busy(kernel, wait)
        async with kernel.lock:
            order = [c.number for c in kernel.notebook.in_order()]
            return await self._run_in_order(kernel, order, timeout, only_outdated=True)

    async def _run_in_order(
        self, kernel: Kernel, numbers: list[int], timeout: float | None, on_output: OnOutput | None = None, *,
        only_outdated: bool = False, then: int | None = None,
    ) -> list[RunResult]:  # fmt: skip
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
        await self.lifecycle.settled(kernel)
        await kernel.external_finished()  # websocket executions sent before this run
        if not kernel.alive or kernel.client is None:
            raise KernelDead(kernel.id, kernel.last_death)
        limits, observer = self.limits, self.lifecycle.observer
        collector = OutputCollector(
            limits.max_output_bytes,
            limits.max_outputs,
            max_image_bytes=limits.max_image_bytes,
            on_output=observer.outputs_of(kernel, cell, on_output),
        )
        run_id, started_at = uuid.uuid4().hex, time.time()
        stale_mark = kernel.notebook.stale_mark()
        usage_mark = observer.run_started(kernel, cell)
        flusher: list[asyncio.Task[None]] = []  # a timer until the run has lasted the interval: most runs end first

        def record_in_flight() -> None:
            work = self._record_in_flight(run_id, kernel, cell, collector, started_at)
            flusher.append(self.lifecycle.tasks.spawn(work, name=f"in-flight-{run_id}"))

        timer = asyncio.get_running_loop().call_later(limits.output_flush_interval, record_in_flight)
        try:
            result = await self._execute(kernel, cell, timeout, collector)
        except Exception as error:
            self.store.abandon_run(run_id, f"the run failed: {error}")
            observer.run_abandoned(kernel, cell)
            raise
        finally:
            timer.cancel()
            for task in flusher:
                task.cancel()
        await observer.run_finished(kernel, result, usage_mark)
        await self.store.finish_run(
            run_id,
            kernel.id,
            cell,
            truncated=result.truncated,
            detail=result.detail,
            last_activity=kernel.last_activity,
            started_at=started_at,
            stale=kernel.notebook.stale_changes_since(stale_mark),
        )
        return result

    async def _execute(
        self, kernel: Kernel, cell: Cell, timeout: float | None, collector: OutputCollector
    ) -> RunResult:
        client = kernel.client
        assert client is not None
        timeout = self.limits.run_timeout if timeout is None else timeout
        kernel.set_state(KernelState.BUSY)
        kernel.touch()
        started = time.time()

        async def escalate() -> None:
            await self.lifecycle.launcher.backend.signal(kernel.sandbox_id, "SIGINT")

        try:
            refused = await self.lifecycle.packages.before_run(kernel, cell.code)  # issue 13: its %pip lines
            if refused is not None:  # a package it asks for was refused or could not be fetched: not sent
                collector.add(refused)
                return _finish(kernel, cell, started, RunResult(cell, "error", None, collector.outputs()))
            execution = await client.execute(cell.code, timeout, collector, self.limits.interrupt_grace, escalate)
            status: RunStatus = "ok" if execution.status == "ok" else "error"
            if execution.status == "timeout":
                status = "timeout"
            result = RunResult(cell, status, execution.execution_count, execution.outputs, execution.truncated)
            if status == "timeout":
                result.detail = f"deadline of {timeout:g} s passed; the kernel was interrupted"
        except KernelUnresponsive as error:
            result = _lost_run(
                cell, "timeout",
                f"deadline of {timeout:g} s passed and the kernel was {error}; it is replaced by a fresh one",
                collector,
            )  # fmt: skip
            self.lifecycle.replace_soon(kernel, died=True)
        except KernelGone:
            if moved_away(kernel, client):  # the kernel runs on, reached at a new address: its memory is kept
                detail = f"{MOVED} while cell {cell.number} ran; its result is lost, the kernel keeps its memory"
                return _finish(kernel, cell, started, _moved_run(cell, detail, collector))
            if kernel not in self.lifecycle.registry:  # shut down under the run: nothing to restart
                detail = f"the kernel was {kernel.last_death} while running cell {cell.number}"
                return _finish(kernel, cell, started, _lost_run(cell, "died", detail, collector))
            cause = await self.lifecycle.death_cause(kernel)
            result = _lost_run(
                cell, "died", f"the kernel died: {cause} while running cell {cell.number}; it is restarted fresh",
                collector,
            )  # fmt: skip
            await self.supervisor.on_lost(kernel, f"{cause} while running cell {cell.number}")
        finally:
            kernel.touch()
            if kernel.state == KernelState.BUSY:
                kernel.set_state(KernelState.IDLE)
        return _finish(kernel, cell, started, result)

    async def _record_in_flight(
        self, run_id: str, kernel: Kernel, cell: Cell, collector: OutputCollector, started_at: float
    ) -> None:
        """Started once a run has lasted ``output_flush_interval``: it is recorded as in flight, and from then on its
        outputs so far are written at that interval (when there are new ones). Shorter runs (most) cost no write
        but the one at their end, and no task: only a timer."""
        interval = self.limits.output_flush_interval
        self.store.begin_run(run_id, kernel.id, cell, started_at)
        written = 0
        while True:
            if collector.changes != written:
                written = collector.changes
                self.store.save_partial_outputs(run_id, collector.outputs(), collector.truncated)
            await asyncio.sleep(interval)


def _finish(kernel: Kernel, cell: Cell, started: float, result: RunResult) -> RunResult:
    """Keep the run's outputs and record on the cell; mark what depends on it stale."""
    cell.outputs, cell.execution_count, cell.status = result.outputs, result.execution_count, result.status
    cell.started, cell.ended = started, time.time()
    kernel.notebook.ran(cell)
    return result


def _moved_run(cell: Cell, detail: str, collector: OutputCollector) -> RunResult:
    """A run cut off because the kernel's connection moved: an error output saying so; the kernel's state is kept."""
    outputs = collector.outputs()
    outputs.append({"output_type": "error", "ename": "ConnectionMoved", "evalue": detail, "traceback": []})
    return RunResult(cell, "error", None, outputs, collector.truncated, detail)


def _lost_run(cell: Cell, status: RunStatus, detail: str, collector: OutputCollector) -> RunResult:
    """A run whose kernel was lost or replaced: its outputs so far and an error output saying what happened."""
    outputs = collector.outputs()
    outputs.append(
        {"output_type": "error", "ename": "KernelDied" if status == "died" else "Timeout", "evalue": detail,
         "traceback": []}
    )  # fmt: skip
    return RunResult(cell, status, None, outputs, collector.truncated, detail, state_kept=False)
