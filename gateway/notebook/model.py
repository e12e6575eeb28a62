"""Cells of one kernel, keyed by the caller's cell number and run in ascending order.

The notebook also keeps the dependency graph between its cells (``gateway.notebook.dependencies``) and marks cells
*stale* when something they depend on changed after they ran: an edit, a re-run or a deletion of a cell upstream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import CellExists, CellNotFound, VersionConflict
from gateway.notebook.dependencies import CellNames, analyse, dependency_graph, downstream, upstream

Output = dict[str, Any]


@dataclass
class Cell:
    """One code cell, the outputs of its last run (empty until it runs) and that run's record."""

    number: int
    code: str
    outputs: list[Output] = field(default_factory=list)
    execution_count: int | None = None
    status: str | None = None  # None (never run), "ok", "error", "timeout", "died"
    started: float | None = None  # epoch seconds of the last run's start and end
    ended: float | None = None
    stale: bool = False  # ran, but code it depends on changed since (or its own code did)
    names: CellNames = field(default_factory=CellNames, repr=False)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def up_to_date(self) -> bool:
        """Ran to the end with its current code and current inputs (an error counts: re-running repeats it)."""
        return self.status in ("ok", "error") and not self.stale

    def forget_run(self) -> None:
        """The kernel's memory is gone: the cell counts as never run (its last outputs stay visible)."""
        self.execution_count, self.status, self.stale = None, None, False


@dataclass
class Notebook:
    """An ordered set of cells. Every method either succeeds or raises and leaves the notebook unchanged."""

    cells: dict[int, Cell] = field(default_factory=dict)
    # Issue 12: changes on every add, edit and delete (the manager bumps it), for optimistic concurrency.
    version: int = 0

    def add(self, number: int, code: str) -> Cell:
        if number in self.cells:
            raise CellExists(number)
        cell = self.cells[number] = Cell(number, code, names=analyse(code))
        self._mark_stale(self._dependents(self.graph(), number))  # it may now be their latest definer
        return cell

    def get(self, number: int) -> Cell:
        try:
            return self.cells[number]
        except KeyError:
            raise CellNotFound(number) from None

    def edit(self, number: int, code: str) -> Cell:
        cell = self.get(number)
        before = self.graph()
        cell.code, cell.names = code, analyse(code)
        # Cells that used what it defined before, and cells that use what it defines now.
        self._mark_stale(self._dependents(before, number) | self._dependents(self.graph(), number))
        if cell.status is not None:
            cell.stale = True  # its outputs come from code that is no longer there
        return cell

    def delete(self, number: int) -> Cell:
        cell = self.get(number)
        dependents = self._dependents(self.graph(), number)
        del self.cells[number]
        self._mark_stale(dependents)
        return cell

    def in_order(self) -> list[Cell]:
        """The cells by ascending cell number: the order of ``run_all``."""
        return [self.cells[number] for number in sorted(self.cells)]

    # --- dependencies ---------------------------------------------------------------------------------------

    def graph(self) -> dict[int, frozenset[int]]:
        """Cell number -> the cells it depends on directly."""
        return dependency_graph({number: cell.names for number, cell in self.cells.items()})

    def ran(self, cell: Cell) -> None:
        """``cell`` just ran: it is up to date, and whatever depends on it is stale."""
        cell.stale = False
        self._mark_stale(self._dependents(self.graph(), cell.number))

    def dependencies(self, number: int) -> list[Cell]:
        """The cells ``number`` depends on, directly or not, in run order."""
        self.get(number)
        return [self.cells[n] for n in sorted(upstream(self.graph(), number))]

    def not_up_to_date(self) -> list[Cell]:
        """Cells that never ran (since the kernel started) or are stale, in run order."""
        return [cell for cell in self.in_order() if not cell.up_to_date]

    def _dependents(self, graph: dict[int, frozenset[int]], number: int) -> set[int]:
        return {n for n in downstream(graph, number) if n in self.cells and n != number}

    def _mark_stale(self, numbers: set[int]) -> None:
        for number in numbers:
            cell = self.cells[number]
            if cell.status is not None:  # a cell that never ran has nothing out of date to show
                cell.stale = True

    # --- version (issue 12) ----------------------------------------------------------------------------------

    def expect_version(self, expected: int | None) -> None:
        """Raise VersionConflict unless ``expected`` is None or the current version."""
        if expected is not None and expected != self.version:
            raise VersionConflict(expected, self.version)

    def next_number(self) -> int:
        """The number a cell appended after every other cell gets (1 for an empty notebook)."""
        return max(self.cells, default=0) + 1
