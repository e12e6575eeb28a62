"""What the core tells the outside about its work (the core's ``KernelObserver`` port): live events
(``EventHub``), metrics (``GatewayMetrics``) and each run's resource use (``CgroupReader``).

The core calls one method per happening (a one-line hook each); nothing here changes what the core does, and a
failure here never fails a run: events and metrics are best effort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.kernels import events
from gateway.kernels.events import EventHub
from gateway.kernels.kernel import Kernel, KernelEvent, RunResult
from gateway.metrics import GatewayMetrics
from gateway.notebook import Cell
from gateway.notebook.outputs import Output, output_size

log = logging.getLogger(__name__)


class UsageReader(Protocol):
    """Reads a kernel container's resource use (``gateway.adapters.docker.cgroups.CgroupReader``)."""

    def begin_run(self, container_id: str) -> Any: ...

    def end_run(self, mark: Any) -> dict[str, object] | None: ...

    def snapshot(self, container_id: str) -> dict[str, int | float | None] | None: ...

    def forget(self, container_id: str) -> None: ...


def cell_event(cell: Cell) -> dict[str, Any]:
    """A cell as events and snapshots carry it (the fields of the cell listing, with times as epoch seconds)."""
    return {
        "number": cell.number,
        "code": cell.code,
        "outputs": cell.outputs,
        "status": cell.status,
        "execution_count": cell.execution_count,
        "started": cell.started,
        "ended": cell.ended,
        "duration": cell.duration,
        "stale": cell.stale,
        "usage": cell.usage,
    }


def cell_size(cell: Cell) -> int:
    return len(cell.code) + sum(output_size(o) for o in cell.outputs)


def stale_map(kernel: Kernel) -> dict[str, bool]:
    return {str(n): c.stale for n, c in kernel.notebook.cells.items()}


def death_cause(detail: str | None) -> str:
    """A bounded label for why a kernel died, from the sentence the core wrote."""
    text = (detail or "").lower()
    if "out of memory" in text or "oom" in text:
        return "oom"
    if "stopped answering" in text or "did not answer" in text or "unresponsive" in text:
        return "unresponsive"
    if "exit" in text or "died" in text or "killed" in text:
        return "exit"
    return "other"


class KernelObserver:
    """Hooks for the core. Use from the event loop."""

    def __init__(
        self, cgroups: UsageReader, hub: EventHub | None = None, metrics: GatewayMetrics | None = None
    ) -> None:
        self.hub = hub or EventHub()
        self.metrics = metrics or GatewayMetrics()
        self.cgroups = cgroups
        # The run in progress on each kernel with its outputs so far (bounded by the output collector's caps),
        # for snapshots taken in the middle of a run.
        self._running: dict[int, dict[str, Any]] = {}
        self._measured: dict[int, str] = {}  # each kernel's container whose cgroup files its runs read

    def snapshot(self, kernel: Kernel) -> dict[str, Any]:
        """The kernel as a viewer first sees it: state, every cell, the run in progress. Take it in the same step
        as ``hub.subscribe`` so the events that follow continue it exactly."""
        return {
            "kernel": {
                "kernel_id": kernel.id,
                "state": kernel.state,
                "last_death": kernel.last_death,
                "runtime": kernel.runtime,
                "created": kernel.created,
            },
            "cells": [cell_event(cell) for cell in kernel.notebook.in_order()],
            "running": self._running.get(kernel.id),
        }

    # --- kernels --------------------------------------------------------------------------------------------

    def watch(self, kernel: Kernel) -> None:
        """Follow the kernel's container (started / stopped / shut down) as ``kernel_state`` events. Idempotent."""
        kernel.listeners.add(self._container_changed)

    def _container_changed(self, kernel: Kernel, what: object) -> None:
        if what != KernelEvent.STARTED:
            self._let_go(kernel)
        self.state_changed(kernel)

    def _let_go(self, kernel: Kernel) -> None:
        """The container the kernel's runs were measured in is gone or not the kernel's any more: its kept cgroup
        files are closed (see ``gateway.adapters.docker.cgroups.KeptFiles``)."""
        if (container_id := self._measured.pop(kernel.id, None)) is not None:
            self.cgroups.forget(container_id)

    def state_changed(self, kernel: Kernel) -> None:
        self.hub.publish(
            kernel.id, events.KERNEL_STATE, {"state": kernel.state, "last_death": kernel.last_death, "at": time.time()}
        )

    def kernel_started(self, kernel: Kernel, source: str, began: float) -> None:
        """``source``: ``pool`` or ``cold``; ``began``: ``time.monotonic()`` when the start was asked for."""
        self.metrics.kernel_start_seconds.labels(source).observe(time.monotonic() - began)
        self.watch(kernel)

    def kernel_gone(self, kernel: Kernel, reason: str | None) -> None:
        """Shut down for good (``reason`` given when the gateway decided it, e.g. culling)."""
        if reason:
            self.metrics.death("culled")
        self.state_changed(kernel)
        self._running.pop(kernel.id, None)
        self._let_go(kernel)
        self.hub.close(kernel.id)

    def kernel_died(self, kernel: Kernel) -> None:
        """Died while idle (its ``last_death`` says why); a replacement follows."""
        self.metrics.death(death_cause(kernel.last_death))
        self.metrics.replacements.labels("died").inc()
        self.state_changed(kernel)

    # --- cells ----------------------------------------------------------------------------------------------

    def cell_added(self, kernel: Kernel, cell: Cell) -> None:
        self.watch(kernel)
        self.hub.publish(
            kernel.id, events.CELL_ADDED, {"cell": cell_event(cell), "stale": stale_map(kernel)}, cell_size(cell)
        )

    def cell_edited(self, kernel: Kernel, cell: Cell) -> None:
        self.hub.publish(
            kernel.id, events.CELL_EDITED, {"cell": cell_event(cell), "stale": stale_map(kernel)}, cell_size(cell)
        )

    def cell_deleted(self, kernel: Kernel, number: int) -> None:
        self.hub.publish(kernel.id, events.CELL_DELETED, {"number": number, "stale": stale_map(kernel)})

    # --- runs -----------------------------------------------------------------------------------------------

    def run_started(self, kernel: Kernel, cell: Cell) -> Any:
        """Publish the start; mark the container's CPU and reset its memory peak.

        The cgroup is read and written on the loop: cgroupfs files are served from the kernel's memory (no disk, no
        waiting), a few microseconds each, less than the two thread hand-offs per run this used to take (issue 15,
        docs/benchmarks.md)."""
        self.watch(kernel)
        started = {"number": cell.number, "code": cell.code, "started": time.time()}
        self._running[kernel.id] = {**started, "outputs": []}
        self.hub.publish(kernel.id, events.RUN_STARTED, started)
        self.hub.publish(kernel.id, events.KERNEL_STATE, {"state": "busy", "last_death": kernel.last_death})
        self._measured[kernel.id] = kernel.container_id
        try:
            return self.cgroups.begin_run(kernel.container_id)
        except Exception:
            log.exception("kernel %d: reading its cgroup failed", kernel.id)
            return None

    def outputs_of(
        self, kernel: Kernel, cell: Cell, forward: Callable[[int, Output], None] | None
    ) -> Callable[[Output], None]:
        """The collector's ``on_output`` for a run: publish each output, then hand it to ``forward`` if given."""

        def on_output(output: Output) -> None:
            if (running := self._running.get(kernel.id)) is not None:
                running["outputs"].append(output)
            self.hub.publish(kernel.id, events.OUTPUT, {"number": cell.number, "output": output}, output_size(output))
            if forward is not None:
                forward(cell.number, output)

        return on_output

    async def run_finished(self, kernel: Kernel, result: RunResult, began: Any) -> None:
        """Measure the run's resource use onto the cell (``cell.usage``), count it, publish the finished cell."""
        cell = result.cell
        try:
            usage = self.cgroups.end_run(began)
        except Exception:
            log.exception("kernel %d: reading its cgroup failed", kernel.id)
            usage = None
        cell.usage = usage
        self._running.pop(kernel.id, None)
        self._count(result)
        self.hub.publish(
            kernel.id, events.RUN_FINISHED, {"cell": cell_event(cell), "stale": stale_map(kernel)}, cell_size(cell)
        )
        self.state_changed(kernel)

    def run_abandoned(self, kernel: Kernel, cell: Cell) -> None:
        """The run failed in the gateway itself (no result): the viewer stops showing it as running."""
        self._running.pop(kernel.id, None)
        self.hub.publish(
            kernel.id, events.RUN_FINISHED, {"cell": cell_event(cell), "stale": stale_map(kernel)}, cell_size(cell)
        )
        self.state_changed(kernel)

    def _count(self, result: RunResult) -> None:
        m = self.metrics
        m.runs.labels(result.status).inc()
        duration = result.cell.duration
        if duration is not None:
            m.run_seconds.labels(result.status).observe(duration)
        if result.truncated:
            m.truncations.inc()
        if result.status == "timeout":
            m.deadline_interrupts.inc()
            if not result.state_kept:
                m.replacements.labels("deadline").inc()
        elif result.status == "died":
            m.death(death_cause(result.detail))
            m.replacements.labels("died").inc()
