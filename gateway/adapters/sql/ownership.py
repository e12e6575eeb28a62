"""Issue 11: several gateway replicas on one database. Which replica serves which kernel, leases and epochs.

- Each replica has a row in ``replicas`` that it renews every third of ``lease_seconds`` (one upsert per replica,
  not per kernel); its lease, and the leases of all the kernels it owns, end at ``expires_at``. Times are the
  database's clock, so the replicas' own clocks never have to agree.
- Each kernel row names its owner (``owner_replica``) and an epoch (``owner_epoch``) bumped at every change of
  owner. Every kernel write of the store checks, in its own transaction, that the epoch this replica holds is the
  row's (``check``): a replica that was silent past its lease and got its kernels adopted cannot write any more;
  it is told (``on_lost``) and drops the kernel.

Every method runs on the store's own thread (one transaction each), never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, not_, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import Double

from gateway.adapters.sql.schema import kernels, replicas
from gateway.adapters.sql.store import Store, interrupt_runs, load_records
from gateway.errors import KernelMoved
from gateway.kernels.ports import Adopted, KernelLocation, KernelRecord, ReplicaPeer

_MAX_BIGINT = 2**63 - 1


class db_now(FunctionElement[float]):  # noqa: N801 (reads as the SQL function it is)
    """The database's current time in Unix seconds (the clock every replica agrees on)."""

    type = Double()
    inherit_cache = True


@compiles(db_now, "postgresql")
def _db_now_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return "extract(epoch from clock_timestamp())::double precision"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ownership:
    """The ``KernelOwnership`` of one replica, on the store's database; fences the store's kernel writes."""

    def __init__(
        self, store: Store, *, instance: str, replica_id: str, url: str, lease_seconds: float, host: str | None = None
    ) -> None:
        self.store = store
        self.instance = instance
        self.replica_id = replica_id
        self.url = url
        self.lease_seconds = lease_seconds
        self.host = (host or socket.gethostname())[:255]
        self.epochs: dict[int, int] = {}  # the epoch this replica holds for each kernel it serves
        self._valid_until = 0.0  # time.monotonic() until which this replica's lease is certainly alive
        self._on_lost: Callable[[int], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        store.fence = self

    # --- fencing (on the store's thread, inside a write's transaction) ------------------------------------------

    def check(self, connection: Connection, kernel_id: int) -> None:
        """Raise KernelMoved unless this replica's epoch for the kernel is still the row's. The row stays locked
        until the write commits (``FOR NO KEY UPDATE``, the lock the adoption's update takes too: no upgrade, no
        deadlock), so an adoption waits for the write or the write sees the new epoch."""
        held = self.epochs.get(kernel_id)
        query = select(kernels.c.owner_epoch).where(kernels.c.id == kernel_id).with_for_update(key_share=True)
        stored = connection.execute(query).scalar()
        if held is not None and stored == held:
            return
        if held is not None:
            self.epochs.pop(kernel_id, None)
            if self._on_lost is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_lost, kernel_id)
        raise KernelMoved(kernel_id)

    def watch_lost(self, on_lost: Callable[[int], None]) -> None:
        self._on_lost, self._loop = on_lost, asyncio.get_running_loop()

    def holds(self, kernel_id: int) -> bool:
        return kernel_id in self.epochs

    def release(self, kernel_id: int) -> None:
        self.epochs.pop(kernel_id, None)

    def lease_valid(self) -> bool:
        return time.monotonic() < self._valid_until

    # --- the replica's own lease ------------------------------------------------------------------------------

    def _alive(self) -> Any:
        """Live replicas of the instance, as a subquery of their ids."""
        return select(replicas.c.id).where(replicas.c.instance == self.instance, replicas.c.expires_at > db_now())

    def _renew(self, connection: Connection) -> None:
        values = {
            "instance": self.instance, "url": self.url, "host": self.host, "pid": os.getpid(),
            "heartbeat_at": db_now(), "expires_at": db_now() + self.lease_seconds,
        }  # fmt: skip
        query = update(replicas).where(replicas.c.id == self.replica_id).values(**values)
        if connection.execute(query).rowcount == 0:
            connection.execute(insert(replicas).values(id=self.replica_id, **values))

    async def heartbeat(self) -> None:
        began = time.monotonic()
        await self.store._do(self._renew)
        # The database's expiry is at least a lease after ``began``; keep a margin for clock rates.
        self._valid_until = began + self.lease_seconds * 0.9

    async def join(self) -> None:
        def work(connection: Connection) -> None:
            query = select(replicas.c.id, replicas.c.pid).where(
                replicas.c.instance == self.instance, replicas.c.host == self.host,
                replicas.c.id != self.replica_id, replicas.c.expires_at > db_now(),
            )  # fmt: skip
            for row in connection.execute(query).all():
                if row.pid == os.getpid() or not _process_alive(row.pid):  # a predecessor here, killed
                    connection.execute(update(replicas).where(replicas.c.id == row.id).values(expires_at=0.0))
            self._renew(connection)

        began = time.monotonic()
        await self.store._do(work)
        self._valid_until = began + self.lease_seconds * 0.9

    async def leave(self) -> None:
        self._valid_until = 0.0
        query = update(replicas).where(replicas.c.id == self.replica_id).values(expires_at=0.0)
        await self.store._do(lambda connection: connection.execute(query))

    async def others_alive(self) -> bool:
        query = select(exists(self._alive().where(replicas.c.id != self.replica_id)))
        return bool(await self.store._do(lambda connection: connection.execute(query).scalar()))

    # --- kernels ----------------------------------------------------------------------------------------------

    def _unowned(self) -> Any:
        """Kernels no other live replica owns."""
        others = self._alive().where(replicas.c.id != self.replica_id)
        return or_(kernels.c.owner_replica.is_(None), not_(kernels.c.owner_replica.in_(others.scalar_subquery())))

    async def claim_orphans(self) -> list[int]:
        def work(connection: Connection) -> list[int]:
            query = select(kernels.c.id, kernels.c.owner_epoch).where(
                kernels.c.instance == self.instance, self._unowned()
            )
            claimed = []
            for row in connection.execute(query.with_for_update()).all():
                epoch = row.owner_epoch + 1
                claim = update(kernels).where(kernels.c.id == row.id)
                connection.execute(claim.values(owner_replica=self.replica_id, owner_epoch=epoch))
                self.epochs[row.id] = epoch
                claimed.append(row.id)
            return claimed

        return await self.store._do(work)

    def _located(self) -> Any:
        alive = and_(replicas.c.id.is_not(None), replicas.c.expires_at > db_now())
        return select(
            kernels.c.id, kernels.c.owner_replica, kernels.c.owner_epoch, replicas.c.url, alive.label("alive")
        ).select_from(kernels.outerjoin(replicas, replicas.c.id == kernels.c.owner_replica))

    @staticmethod
    def _location(row: Any) -> KernelLocation:
        return KernelLocation(row.id, row.owner_replica, row.owner_epoch, bool(row.alive), row.url)

    async def orphans(self) -> list[KernelLocation]:
        query = self._located().where(
            kernels.c.instance == self.instance,
            or_(kernels.c.owner_replica.is_(None), kernels.c.owner_replica != self.replica_id),
        )

        def work(connection: Connection) -> list[KernelLocation]:
            return [self._location(row) for row in connection.execute(query) if not row.alive]

        return await self.store._do(work)

    async def locate(self, kernel_ref: int | str) -> KernelLocation | None:
        ref = str(kernel_ref)
        if ref.isdigit():
            if int(ref) > _MAX_BIGINT:
                return None
            which = kernels.c.id == int(ref)
        else:
            which = kernels.c.uuid == ref[:36]
        query = self._located().where(kernels.c.instance == self.instance, which)

        def work(connection: Connection) -> KernelLocation | None:
            row = connection.execute(query).first()
            return None if row is None else self._location(row)

        return await self.store._do(work)

    async def peers(self) -> list[ReplicaPeer]:
        query = (
            select(replicas.c.id, replicas.c.url)
            .where(replicas.c.instance == self.instance, replicas.c.expires_at > db_now())
            .where(replicas.c.id != self.replica_id)
            .order_by(replicas.c.id)
        )

        def work(connection: Connection) -> list[ReplicaPeer]:
            return [ReplicaPeer(row.id, row.url) for row in connection.execute(query)]

        return await self.store._do(work)

    async def stored_elsewhere(self, answered: Collection[str]) -> list[KernelRecord]:
        served = [self.replica_id, *answered]
        condition = and_(
            kernels.c.instance == self.instance,
            or_(kernels.c.owner_replica.is_(None), not_(kernels.c.owner_replica.in_(served))),
        )
        return await self.store._do(lambda connection: load_records(connection, condition))

    async def adopt(self, kernel_id: int, seen_epoch: int, detail: str) -> Adopted | None:
        def work(connection: Connection) -> Adopted | None:
            mine_or_unowned = or_(kernels.c.owner_replica == self.replica_id, self._unowned())
            query = (
                update(kernels)
                .where(kernels.c.id == kernel_id, kernels.c.owner_epoch == seen_epoch, mine_or_unowned)
                .values(owner_replica=self.replica_id, owner_epoch=seen_epoch + 1)
            )
            if connection.execute(query).rowcount != 1:
                return None
            interrupted = interrupt_runs(connection, kernels.c.id == kernel_id, detail)
            (record,) = load_records(connection, kernels.c.id == kernel_id)
            self.epochs[kernel_id] = seen_epoch + 1
            return Adopted(record, bool(interrupted))

        return await self.store._do(work)
