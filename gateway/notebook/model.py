"""Cells of one kernel, keyed by the caller's cell number and run in ascending order.

The notebook also keeps the dependency graph between its cells (``gateway.notebook.cell_graph``) and marks cells
*stale* when something they depend on changed after they ran: an edit, a re-run or a deletion of a cell upstream.
Each change costs time in proportion to the cells it affects, not to the size of the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import CellExists, CellNotFound, TooManyCells, VersionConflict
from gateway.notebook.cell_graph import CellGraph
from gateway.notebook.dependencies import CellNames, analyse
from gateway.notebook.outputs import Output


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
    # the last run's resource use from the container's cgroup (issue 14): peak_memory_bytes, cpu_seconds, peak_scope
    usage: dict[str, Any] | None = None
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
    """An ordered set of cells. Every method either succeeds or raises and leaves the notebook unchanged.

    Change ``cells`` through the methods only: they keep the dependency graph and the staleness record in step.
    """

    cells: dict[int, Cell] = field(default_factory=dict)
    version: int = 0  # changes with every add, edit and delete: writers detect each other (``expect_version``)
    _graph: CellGraph = field(default_factory=CellGraph, init=False, repr=False, compare=False)
    # Staleness record: a clock ticking at each change of a ``stale`` flag, and for each cell number the tick of
    # its latest change, oldest first (see ``stale_changes_since``).
    _stale_clock: int = field(default=0, init=False, repr=False, compare=False)
    _stale_ticks: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for number, cell in self.cells.items():
            self._graph.put(number, cell.names)

    def add(self, number: int, code: str) -> Cell:
        if number in self.cells:
            raise CellExists(number)
        cell = self.cells[number] = Cell(number, code, names=analyse(code))
        self._graph.put(number, cell.names)
        self._mark_stale(self._graph.downstream(number))  # it may now be the latest definer of what they use
        return cell

    def get(self, number: int) -> Cell:
        try:
            return self.cells[number]
        except KeyError:
            raise CellNotFound(number) from None

    def edit(self, number: int, code: str) -> Cell:
        cell = self.get(number)
        names = analyse(code)
        before = self._graph.downstream(number)
        cell.code, cell.names = code, names
        self._graph.put(number, names)
        # Cells that used what it defined before, and cells that use what it defines now.
        self._mark_stale(before | self._graph.downstream(number))
        if cell.status is not None:
            self._set_stale(cell, True)  # its outputs come from code that is no longer there
        return cell

    def delete(self, number: int) -> Cell:
        cell = self.get(number)
        dependents = self._graph.downstream(number)
        del self.cells[number]
        self._graph.remove(number)
        self._stale_ticks.pop(number, None)
        self._mark_stale(dependents)
        return cell

    def in_order(self) -> list[Cell]:
        """The cells by ascending cell number: the order of ``run_all``."""
        return [self.cells[number] for number in sorted(self.cells)]

    def ensure_room(self, adding: int, limit: int) -> None:
        """Raise TooManyCells if adding ``adding`` cells would take the notebook past ``limit`` cells."""
        if len(self.cells) + adding > limit:
            raise TooManyCells(len(self.cells), limit, adding)

    # --- dependencies ---------------------------------------------------------------------------------------

    def graph(self) -> dict[int, frozenset[int]]:
        """Cell number -> the cells it depends on directly (built for the whole notebook: O(cells))."""
        return self._graph.as_dict()

    def ran(self, cell: Cell) -> None:
        """``cell`` just ran: it is up to date, and whatever depends on it is stale."""
        self._set_stale(cell, False)
        if self.cells.get(cell.number) is cell:  # not deleted while it ran
            self._mark_stale(self._graph.downstream(cell.number))

    def dependencies(self, number: int) -> list[Cell]:
        """The cells ``number`` depends on, directly or not, in run order."""
        self.get(number)
        return [self.cells[n] for n in sorted(self._graph.upstream(number))]

    def not_up_to_date(self) -> list[Cell]:
        """Cells that never ran (since the kernel started) or are stale, in run order."""
        return [cell for cell in self.in_order() if not cell.up_to_date]

    @property
    def work(self) -> int:
        """Steps the dependency bookkeeping has taken so far (see ``CellGraph.work``): what cost tests count."""
        return self._graph.work

    # --- staleness record -------------------------------------------------------------------------------------

    def stale_mark(self) -> int:
        """A point in the notebook's history of ``stale`` flags, for ``stale_changes_since``."""
        return self._stale_clock

    def stale_changes_since(self, mark: int) -> dict[int, bool]:
        """``{number: stale}`` of the cells whose ``stale`` flag the notebook changed since ``mark`` (a cell changed
        back and forth may be included, with its current flag): what a store must write to follow. Costs the number
        of such cells. Flags set on a ``Cell`` directly (``forget_run``) are not recorded."""
        changed: dict[int, bool] = {}
        for number, tick in reversed(self._stale_ticks.items()):
            if tick <= mark:
                break
            changed[number] = self.cells[number].stale
        return changed

    def _set_stale(self, cell: Cell, stale: bool) -> None:
        if cell.stale == stale:
            return
        cell.stale = stale
        if self.cells.get(cell.number) is cell:
            self._stale_clock += 1
            self._stale_ticks.pop(cell.number, None)  # re-inserted last: the dict stays ordered by tick
            self._stale_ticks[cell.number] = self._stale_clock

    def _mark_stale(self, numbers: set[int]) -> None:
        for number in numbers:
            cell = self.cells[number]
            if cell.status is not None:  # a cell that never ran has nothing out of date to show
                self._set_stale(cell, True)

    # --- version --------------------------------------------------------------------------------------------

    def expect_version(self, expected: int | None) -> None:
        """Raise VersionConflict unless ``expected`` is None or the current version."""
        if expected is not None and expected != self.version:
            raise VersionConflict(expected, self.version)

    def next_number(self) -> int:
        """The number a cell appended after every other cell gets (1 for an empty notebook)."""
        return max(self.cells, default=0) + 1
