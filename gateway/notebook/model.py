"""Cells of one kernel, keyed by the caller's cell number and run in ascending order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import CellExists, CellNotFound

Output = dict[str, Any]


@dataclass
class Cell:
    """One code cell and the outputs of its last run (empty until it runs)."""

    number: int
    code: str
    outputs: list[Output] = field(default_factory=list)
    execution_count: int | None = None
    status: str | None = None  # None (never run), "ok", "error", "timeout", "died"


@dataclass
class Notebook:
    """An ordered set of cells. Every method either succeeds or raises and leaves the notebook unchanged."""

    cells: dict[int, Cell] = field(default_factory=dict)

    def add(self, number: int, code: str) -> Cell:
        if number in self.cells:
            raise CellExists(number)
        cell = self.cells[number] = Cell(number, code)
        return cell

    def get(self, number: int) -> Cell:
        try:
            return self.cells[number]
        except KeyError:
            raise CellNotFound(number) from None

    def edit(self, number: int, code: str) -> Cell:
        cell = self.get(number)
        cell.code = code
        return cell

    def delete(self, number: int) -> Cell:
        cell = self.get(number)
        del self.cells[number]
        return cell

    def in_order(self) -> list[Cell]:
        """The cells by ascending cell number: the order of ``run_all``."""
        return [self.cells[number] for number in sorted(self.cells)]
