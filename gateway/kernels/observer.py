"""The observer the core uses when nobody watches (tests, tools): every hook does nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.ports import OnOutput
from gateway.notebook import Cell
from gateway.notebook.outputs import Output


class NullObserver:
    """A ``KernelObserver`` that sees nothing."""

    def kernel_started(self, kernel: Kernel, source: str, began: float) -> None:
        return None

    def kernel_gone(self, kernel: Kernel, reason: str | None) -> None:
        return None

    def kernel_died(self, kernel: Kernel) -> None:
        return None

    def cell_added(self, kernel: Kernel, cell: Cell) -> None:
        return None

    def cell_edited(self, kernel: Kernel, cell: Cell) -> None:
        return None

    def cell_deleted(self, kernel: Kernel, number: int) -> None:
        return None

    def run_started(self, kernel: Kernel, cell: Cell) -> Any:
        return None

    def outputs_of(self, kernel: Kernel, cell: Cell, forward: OnOutput | None) -> Callable[[Output], None] | None:
        if forward is None:
            return None
        return lambda output: forward(cell.number, output)

    async def run_finished(self, kernel: Kernel, result: RunResult, mark: Any) -> None:
        return None

    def run_abandoned(self, kernel: Kernel, cell: Cell) -> None:
        return None
