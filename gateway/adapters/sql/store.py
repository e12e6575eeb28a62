"""Durable state of one gateway: its kernels (container, connection info, key), their cells, and cell runs.

``Store`` is the only door to the database. Every method is one short transaction run in the store's own
single thread, never on the event loop; being one thread, writes happen in the order they were asked for, so a
write that nobody awaits (``begin_run``, ``save_partial_outputs``) is still done before any later one. Run ends
that queue up meanwhile are committed together (``gateway.adapters.sql.writer``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, Update, bindparam, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.adapters.sql import database
from gateway.adapters.sql.schema import cells, kernel_packages, kernels, runs
from gateway.adapters.sql.writer import StoreThread
from gateway.errors import StoreUnavailable
from gateway.kernels.ports import InterruptedRun, KernelRecord
from gateway.notebook import Cell
from gateway.notebook.dependencies import analyse
from gateway.notebook.outputs import Output
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.adapters.sql.ownership import Ownership

log = logging.getLogger(__name__)

T = TypeVar("T")

INTERRUPTED = "interrupted"


#: Key of the ``connection`` column's JSON that holds the sandbox id (``SandboxHandle.kernel_id``) when it is not
#: the kernel's own id (a restart took a warm-pool container); absent otherwise. No column of its own: no migration.
_SANDBOX_ID = "jupycell_sandbox_id"


def _record_from_row(row: Any) -> KernelRecord:
    values = row._asdict()
    values.pop("owner_replica", None), values.pop("owner_epoch", None)  # issue 11: the store's own business
    connection = dict(values.pop("connection") or {})
    sandbox = {
        "container_id": values.pop("container_id"),
        "name": values.pop("container_name"),
        "connection": connection,
        "sandbox_id": connection.pop(_SANDBOX_ID, None) or values["id"],
    }
    return KernelRecord(**values, sandbox=sandbox)


def _sandbox_values(sandbox: dict[str, Any], kernel_id: int) -> dict[str, Any]:
    """The kernels row's columns for a sandbox handle's state."""
    connection = dict(sandbox.get("connection", {}))
    if sandbox.get("sandbox_id") not in (None, kernel_id):
        connection[_SANDBOX_ID] = sandbox["sandbox_id"]
    return {
        "container_id": sandbox.get("container_id", ""),
        "container_name": sandbox.get("name", ""),
        "connection": connection,
    }


def _cell_values(cell: Cell) -> dict[str, Any]:
    return {
        "code": cell.code,
        "outputs": cell.outputs,
        "execution_count": cell.execution_count,
        "status": cell.status,
        "started_at": cell.started,
        "ended_at": cell.ended,
        "stale": cell.stale,
        "usage": cell.usage,  # issue 14
    }


def _cell_from_row(row: Any) -> Cell:
    return Cell(
        number=row.number,
        code=row.code,
        outputs=row.outputs,
        execution_count=row.execution_count,
        status=row.status,
        started=row.started_at,
        ended=row.ended_at,
        stale=row.stale,
        usage=row.usage,  # issue 14
        names=analyse(row.code),
    )


def _set_version(connection: Connection, kernel_id: int, version: int | None) -> None:
    """Issue 12: write the notebook's new version in the same transaction as the change that made it."""
    if version is not None:
        connection.execute(update(kernels).where(kernels.c.id == kernel_id).values(notebook_version=version))


def _set_stale(connection: Connection, kernel_id: int, stale: dict[int, bool] | None) -> None:
    """Write the staleness a change caused in other cells: ``{cell number: stale}``."""
    for flag in (True, False):
        numbers = [number for number, value in (stale or {}).items() if value is flag]
        if numbers:
            connection.execute(
                update(cells).where(cells.c.kernel_id == kernel_id, cells.c.number.in_(numbers)).values(stale=flag)
            )


class Store:
    """Kernels, cells and runs in the configured database. ``await Store.open(settings)``, ``close()`` at the end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = StoreThread(engine)
        #: Issue 11: with several replicas, the ownership that fences every kernel write (None: one gateway).
        self.fence: Ownership | None = None
        self._recorded: set[str] = set()  # runs ``begin_run`` wrote as in flight (most runs are shorter: none)

    def _fenced(self, connection: Connection, kernel_id: int) -> None:
        """In a write transaction: refuse (``KernelMoved``) a write to a kernel another replica adopted."""
        if self.fence is not None:
            self.fence.check(connection, kernel_id)

    @classmethod
    async def open(cls, settings: Settings) -> Store:
        """Connect, create the SQLite file with tight permissions if needed, migrate to the newest schema."""

        def connect() -> Engine:
            engine = database.create_database_engine(settings)
            database.upgrade(engine)
            return engine

        try:
            engine = await asyncio.to_thread(connect)
        except (SQLAlchemyError, OSError) as error:
            raise StoreUnavailable(f"Cannot open the database: {error}") from error
        return cls(engine)

    async def close(self) -> None:
        await self._writer.close()

    # --- plumbing -----------------------------------------------------------------------------------------

    async def _do(self, work: Callable[[Connection], T], *, groupable: bool = False) -> T:
        """Run ``work`` in one transaction on the store's thread; return once it is committed (``groupable``: it
        may share its transaction with other groupable writes queued at the same time)."""
        return await self._writer.run(work, groupable=groupable)

    def _queue(self, work: Callable[[Connection], Any], what: str) -> None:
        """Run ``work`` in one transaction on the store's thread without waiting for it (failures are logged)."""
        self._writer.queue(work, what)

    # --- kernels ------------------------------------------------------------------------------------------

    async def load_kernels(self, instance: str) -> list[KernelRecord]:
        """Every kernel of ``instance`` with its cells (in cell order)."""

        condition = kernels.c.instance == instance
        if self.fence is not None:  # issue 11: only the kernels this replica owns (claimed at start-up)
            condition &= kernels.c.owner_replica == self.fence.replica_id
        return await self._do(lambda connection: load_records(connection, condition))

    async def add_kernel(self, record: KernelRecord) -> None:
        values = {name: getattr(record, name) for name in kernels.c.keys() if hasattr(record, name)}
        values.update(_sandbox_values(record.sandbox, record.id))
        if self.fence is not None:  # issue 11: a new kernel is this replica's, at epoch 1
            values.update(owner_replica=self.fence.replica_id, owner_epoch=1)
            self.fence.epochs[record.id] = 1
        await self._do(lambda c: c.execute(insert(kernels).values(**values)))

    async def update_kernel(self, kernel_id: int, **values: Any) -> None:
        """Set columns of the kernel's row (e.g. ``state``, ``last_death``, ``container_id``, ``hmac_key``)."""

        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(update(kernels).where(kernels.c.id == kernel_id).values(**values))

        await self._do(work)

    async def delete_kernel(self, kernel_id: int) -> None:
        """Forget the kernel, its cells and its runs."""

        def work(connection: Connection) -> None:
            # Explicit rather than ON DELETE CASCADE alone: SQLite files opened without foreign_keys=ON keep rows.
            self._fenced(connection, kernel_id)
            connection.execute(delete(runs).where(runs.c.kernel_id == kernel_id))
            connection.execute(delete(cells).where(cells.c.kernel_id == kernel_id))
            connection.execute(delete(kernel_packages).where(kernel_packages.c.kernel_id == kernel_id))
            connection.execute(delete(kernels).where(kernels.c.id == kernel_id))

        await self._do(work)

    # --- cells --------------------------------------------------------------------------------------------

    # ``stale``: the cells whose staleness the change altered, ``{number: stale}``, written in the same transaction.

    async def add_cell(
        self, kernel_id: int, cell: Cell, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None:
        now = time.time()
        values = {"kernel_id": kernel_id, "number": cell.number, **_cell_values(cell), "created_at": now}

        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(insert(cells).values(**values, updated_at=now))
            _set_stale(connection, kernel_id, stale)
            _set_version(connection, kernel_id, version)

        await self._do(work)

    async def save_cell(
        self, kernel_id: int, cell: Cell, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None:
        """Write the cell's code, outputs and last run's record."""
        values = {**_cell_values(cell), "updated_at": time.time()}

        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(_update_cell(kernel_id, cell.number).values(**values))
            _set_stale(connection, kernel_id, stale)
            _set_version(connection, kernel_id, version)

        await self._do(work)

    async def delete_cell(
        self, kernel_id: int, number: int, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None:
        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(delete(cells).where(cells.c.kernel_id == kernel_id, cells.c.number == number))
            _set_stale(connection, kernel_id, stale)
            _set_version(connection, kernel_id, version)

        await self._do(work)

    async def kernel_replaced(
        self,
        kernel_id: int,
        notebook: list[Cell],
        *,
        sandbox: dict[str, Any],
        hmac_key: str,
        limits: dict[str, Any],
        state: str,
        last_death: str | None,
    ) -> None:
        """The kernel got a fresh container (``sandbox``: its handle's state); ``notebook``: its cells, whose run
        record (count, status, staleness) the fresh memory reset."""
        values = _sandbox_values(sandbox, kernel_id) | {"hmac_key": hmac_key, "limits": limits}
        values |= {"state": state, "last_death": last_death}
        rows = [{"n": c.number, "count": c.execution_count, "status": c.status, "stale": c.stale} for c in notebook]
        query = (
            update(cells)
            .where(cells.c.kernel_id == kernel_id, cells.c.number == bindparam("n"))
            .values(execution_count=bindparam("count"), status=bindparam("status"), stale=bindparam("stale"))
        )

        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(update(kernels).where(kernels.c.id == kernel_id).values(**values))
            if rows:
                connection.execute(query, rows)

        await self._do(work)

    # --- runs ---------------------------------------------------------------------------------------------

    def begin_run(self, run_id: str, kernel_id: int, cell: Cell, started_at: float) -> None:
        """Record that ``cell`` is running (not awaited: it overlaps with the run itself)."""
        values = {
            "id": run_id,
            "kernel_id": kernel_id,
            "cell_number": cell.number,
            "code": cell.code,
            "state": "running",
            "outputs": [],
            "truncated": False,
            "started_at": started_at,
        }

        self._recorded.add(run_id)

        def work(connection: Connection) -> None:
            self._fenced(connection, kernel_id)
            connection.execute(insert(runs).values(**values))

        self._queue(work, "recording a run's start")

    def save_partial_outputs(self, run_id: str, outputs: list[Output], truncated: bool) -> None:
        """Keep the outputs a running cell has produced so far (not awaited)."""
        query = update(runs).where(runs.c.id == run_id, runs.c.state == "running")
        self._queue(lambda c: c.execute(query.values(outputs=outputs, truncated=truncated)), "saving partial outputs")

    async def finish_run(
        self,
        run_id: str,
        kernel_id: int,
        cell: Cell,
        *,
        truncated: bool,
        detail: str | None,
        last_activity: float,
        started_at: float,
        stale: dict[int, bool] | None = None,
    ) -> None:
        """One transaction at the end of a run: the run's record, the cell's outputs, the kernel's activity."""
        now = time.time()
        recorded = run_id in self._recorded  # else a short run: no row yet, one INSERT instead of UPDATE + INSERT
        self._recorded.discard(run_id)

        def work(connection: Connection) -> None:
            outcome = {
                "state": "finished",
                "status": cell.status,
                "outputs": None,
                "execution_count": cell.execution_count,
                "truncated": truncated,
                "detail": detail,
                "finished_at": now,
                "usage": cell.usage,  # issue 14
            }
            self._fenced(connection, kernel_id)
            if not recorded or connection.execute(_FINISH_RUN, {"w_run": run_id, **outcome}).rowcount == 0:
                # A short run: never recorded as in flight (see CellRunner._record_in_flight).
                values = {"kernel_id": kernel_id, "cell_number": cell.number, "code": cell.code}
                connection.execute(_INSERT_RUN, {"id": run_id, **values, **outcome, "started_at": started_at})
            cell_values = {**_cell_values(cell), "updated_at": now, "w_kernel": kernel_id, "w_number": cell.number}
            connection.execute(_SAVE_CELL, cell_values)
            _set_stale(connection, kernel_id, stale)
            connection.execute(_TOUCH_KERNEL, {"w_kernel": kernel_id, "last_activity_at": last_activity})

        await self._do(work, groupable=True)

    def abandon_run(self, run_id: str, detail: str) -> None:
        """The run ended in an error of the gateway's own (not awaited); the cell keeps its earlier outputs."""
        self._recorded.discard(run_id)
        query = update(runs).where(runs.c.id == run_id, runs.c.state == "running")  # not one closed meanwhile
        values = {"state": "finished", "status": "error", "outputs": None, "detail": detail, "finished_at": time.time()}
        self._queue(lambda c: c.execute(query.values(**values)), "recording a failed run")

    async def interrupt_open_runs(self, instance: str, detail: str) -> list[InterruptedRun]:
        """Close the runs of ``instance`` still recorded as running (the gateway stopped during them).

        Each becomes ``interrupted``, keeping its partial outputs followed by an error output that says what
        happened; its cell (if it still exists) shows the same.
        """
        condition = kernels.c.instance == instance
        if self.fence is not None:  # issue 11: runs of other replicas' kernels are theirs
            condition &= kernels.c.owner_replica == self.fence.replica_id
        return await self._do(lambda connection: interrupt_runs(connection, condition, detail))

    # --- packages on demand (issue 13) --------------------------------------------------------------------

    async def save_packages(self, kernel_id: int, requirements: list[str], wheels: list[dict[str, Any]]) -> None:
        """Record what the kernel installed (replacing the previous record)."""

        def work(connection: Connection) -> None:
            connection.execute(delete(kernel_packages).where(kernel_packages.c.kernel_id == kernel_id))
            connection.execute(
                insert(kernel_packages).values(
                    kernel_id=kernel_id, requirements=requirements, wheels=wheels, updated_at=time.time()
                )
            )

        await self._do(work)

    async def load_packages(self, instance: str) -> dict[int, tuple[list[str], list[dict[str, Any]]]]:
        """Every kernel of ``instance`` that installed packages: (requirements, wheels)."""

        def work(connection: Connection) -> dict[int, tuple[list[str], list[dict[str, Any]]]]:
            query = (
                select(kernel_packages)
                .join(kernels, kernel_packages.c.kernel_id == kernels.c.id)
                .where(kernels.c.instance == instance)
            )
            return {row.kernel_id: (list(row.requirements), list(row.wheels)) for row in connection.execute(query)}

        return await self._do(work)

    async def runs_of(self, kernel_id: int) -> list[dict[str, Any]]:
        """The kernel's runs, oldest first (for inspection and tests)."""

        def work(connection: Connection) -> list[dict[str, Any]]:
            query = select(runs).where(runs.c.kernel_id == kernel_id).order_by(runs.c.started_at)
            return [row._asdict() for row in connection.execute(query)]

        return await self._do(work)


# A run's end, the most frequent write: statements built once, their values given at execution (SQLAlchemy then
# finds their compiled form in its cache without building and hashing a new statement per run; issue 15).
# The ``w_`` parameters are the WHERE clause's; every other parameter is a column to set.
_FINISH_RUN = update(runs).where(runs.c.id == bindparam("w_run"))
_INSERT_RUN = insert(runs)
_SAVE_CELL = update(cells).where(cells.c.kernel_id == bindparam("w_kernel"), cells.c.number == bindparam("w_number"))
_TOUCH_KERNEL = update(kernels).where(kernels.c.id == bindparam("w_kernel"))


def _update_cell(kernel_id: int, number: int) -> Update:
    return update(cells).where(cells.c.kernel_id == kernel_id, cells.c.number == number)


def load_records(connection: Connection, condition: ColumnElement[bool]) -> list[KernelRecord]:
    """The kernels matching ``condition`` (on the kernels table), each with its cells in order."""
    records = {}
    for row in connection.execute(select(kernels).where(condition)):
        records[row.id] = _record_from_row(row)
    query = (
        select(cells)
        .join(kernels, cells.c.kernel_id == kernels.c.id)
        .where(condition)
        .order_by(cells.c.kernel_id, cells.c.number)
    )
    for row in connection.execute(query):
        records[row.kernel_id].cells.append(_cell_from_row(row))
    return list(records.values())


def interrupt_runs(connection: Connection, condition: ColumnElement[bool], detail: str) -> list[InterruptedRun]:
    """Close the runs still recorded as running of the kernels matching ``condition``: each becomes
    ``interrupted``, keeping its partial outputs followed by an error output saying ``detail``; so does its cell."""
    now = time.time()
    marker = {"output_type": "error", "ename": "GatewayRestart", "evalue": detail, "traceback": []}
    query = (
        select(runs.c.id, runs.c.kernel_id, runs.c.cell_number, runs.c.outputs)
        .join(kernels, runs.c.kernel_id == kernels.c.id)
        .where(runs.c.state == "running", condition)
    )
    interrupted = []
    for row in connection.execute(query).all():
        outputs = [*(row.outputs or []), marker]
        connection.execute(
            update(runs)
            .where(runs.c.id == row.id)
            .values(state=INTERRUPTED, status=INTERRUPTED, outputs=outputs, detail=detail, finished_at=now)
        )
        connection.execute(
            _update_cell(row.kernel_id, row.cell_number).values(
                outputs=outputs, status=INTERRUPTED, execution_count=None, ended_at=now, updated_at=now
            )
        )
        interrupted.append(InterruptedRun(row.kernel_id, row.cell_number, outputs))
    return interrupted
