"""Cell edits (add, edit, delete), stored with the staleness they cause before the caller hears of them.

Each edit is applied to the notebook, then written; if the write fails the notebook is put back as it was (cells
and staleness), so memory and store never disagree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.kernels.kernel import Kernel
from gateway.kernels.ports import KernelStore
from gateway.notebook import Cell, Notebook
from gateway.notebook.model import stale_changes, stale_flags

_RUN_RECORD = ("outputs", "execution_count", "status", "started", "ended")


class CellEditor:
    """Adds, edits and deletes cells of kernels' notebooks."""

    def __init__(self, store: KernelStore) -> None:
        self.store = store

    async def add_cell(self, kernel: Kernel, number: int, code: str) -> Cell:
        notebook, before = kernel.notebook, stale_flags(kernel.notebook)
        cell = notebook.add(number, code)
        await self._write(
            lambda: self.store.add_cell(kernel.id, cell, stale=stale_changes(notebook, before)),
            undo=lambda: notebook.delete(number),
            notebook=notebook,
            before=before,
        )
        return cell

    async def edit_cell(self, kernel: Kernel, number: int, code: str) -> Cell:
        notebook, before = kernel.notebook, stale_flags(kernel.notebook)
        old_code = notebook.get(number).code
        cell = notebook.edit(number, code)
        await self._write(
            lambda: self.store.save_cell(kernel.id, cell, stale=stale_changes(notebook, before)),
            undo=lambda: notebook.edit(number, old_code),
            notebook=notebook,
            before=before,
        )
        return cell

    async def delete_cell(self, kernel: Kernel, number: int) -> Cell:
        notebook, before = kernel.notebook, stale_flags(kernel.notebook)
        cell = notebook.delete(number)
        await self._write(
            lambda: self.store.delete_cell(kernel.id, number, stale=stale_changes(notebook, before)),
            undo=lambda: _put_back(notebook, cell),
            notebook=notebook,
            before=before,
        )
        return cell

    @staticmethod
    async def _write(
        write: Callable[[], Awaitable[None]], *, undo: Callable[[], object], notebook: Notebook, before: dict[int, bool]
    ) -> None:
        try:
            await write()
        except BaseException:
            undo()
            for number, stale in before.items():
                if (cell := notebook.cells.get(number)) is not None:
                    cell.stale = stale
            raise


def _put_back(notebook: Notebook, old: Cell) -> None:
    """Re-insert a deleted cell with its last run's record."""
    cell = notebook.add(old.number, old.code)
    for name in _RUN_RECORD:
        setattr(cell, name, getattr(old, name))
