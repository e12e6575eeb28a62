"""Cell edits (add, edit, delete), stored with the staleness they cause before the caller hears of them.

Each edit is checked against ``expected_version`` (optimistic concurrency between writers), applied to the notebook,
then written; if the write fails the notebook is put back as it was (cells
and staleness), so memory and store never disagree. An edit costs the cells it affects, not the notebook's size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.kernels.kernel import Kernel
from gateway.kernels.ports import KernelObserver, KernelStore
from gateway.notebook import Cell, Notebook

_RUN_RECORD = ("outputs", "execution_count", "status", "started", "ended", "stale")


class CellEditor:
    """Adds, edits and deletes cells of kernels' notebooks."""

    def __init__(self, store: KernelStore, max_cells: int, observer: KernelObserver) -> None:
        self.store = store
        self.max_cells = max_cells
        self.observer = observer

    async def add_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        notebook, mark = kernel.notebook, kernel.notebook.stale_mark()
        notebook.expect_version(expected_version)
        notebook.ensure_room(1, self.max_cells)
        cell = notebook.add(number, code)
        stale, version = notebook.stale_changes_since(mark), _bump(notebook)
        await self._write(
            self.store.add_cell(kernel.id, cell, stale=stale, version=version), undo=lambda: notebook.delete(number),
            notebook=notebook, stale=stale,
        )  # fmt: skip
        kernel.touch()
        self.observer.cell_added(kernel, cell)
        return cell

    async def edit_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> Cell:
        notebook, mark = kernel.notebook, kernel.notebook.stale_mark()
        notebook.expect_version(expected_version)
        old_code = notebook.get(number).code
        cell = notebook.edit(number, code)
        stale, version = notebook.stale_changes_since(mark), _bump(notebook)
        await self._write(
            self.store.save_cell(kernel.id, cell, stale=stale, version=version),
            undo=lambda: notebook.edit(number, old_code),
            notebook=notebook, stale=stale,
        )  # fmt: skip
        kernel.touch()
        self.observer.cell_edited(kernel, cell)
        return cell

    async def delete_cell(self, kernel: Kernel, number: int, *, expected_version: int | None = None) -> Cell:
        notebook, mark = kernel.notebook, kernel.notebook.stale_mark()
        notebook.expect_version(expected_version)
        cell = notebook.delete(number)
        stale, version = notebook.stale_changes_since(mark), _bump(notebook)
        await self._write(
            self.store.delete_cell(kernel.id, number, stale=stale, version=version),
            undo=lambda: _put_back(notebook, cell),
            notebook=notebook, stale=stale,
        )  # fmt: skip
        kernel.touch()
        self.observer.cell_deleted(kernel, number)
        return cell

    @staticmethod
    async def _write(
        write: Awaitable[None], *, undo: Callable[[], object], notebook: Notebook, stale: dict[int, bool]
    ) -> None:
        """Await the store write; on failure undo the edit and the staleness it caused (an edit only ever marks
        cells stale, so each flag it changed was False before)."""
        try:
            await write
        except BaseException:
            undo()
            for number, flag in stale.items():
                if (cell := notebook.cells.get(number)) is not None:
                    cell.stale = not flag
            raise


def _bump(notebook: Notebook) -> int:
    """A change was made: the notebook's next version (checked and bumped before any await: writers of one
    kernel cannot both pass the same ``expected_version``). A failed write leaves it bumped, which can only cause
    a conflict, never hide one."""
    notebook.version += 1
    return notebook.version


def _put_back(notebook: Notebook, old: Cell) -> None:
    """Re-insert a deleted cell with its last run's record."""
    cell = notebook.add(old.number, old.code)
    for name in _RUN_RECORD:
        setattr(cell, name, getattr(old, name))
