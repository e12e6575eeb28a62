"""What the replicas of one deployment share on PostgreSQL (issue 11): admission of starts, the warm pool's
records, and the leader lock. Implements the core's ``Coordination`` port.

- **Admission** is one transaction under a transaction-scoped advisory lock per deployment: count the live
  kernels of every replica plus the pending starts (rows of ``admissions``; one whose kernel is stored no longer
  counts, one past its expiry neither), and record the new start if the limits allow it. Exact under any
  concurrency, whichever replica asks.
- **The pool**: a claim is ``UPDATE ... WHERE kernel_id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1)``, so each
  ready kernel goes to exactly one claimer, and concurrent claimers never wait on each other.
- **The leader lock** is a session advisory lock held on a connection of its own: PostgreSQL releases it when
  that connection ends (its process died, or TCP keepalives gave up on it), so no expiry is needed, and the holder
  learns it lost the lock as soon as its connection fails (``try_acquire`` checks it).

Every call runs on this module's own threads, never on the event loop; times are the database's clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from gateway.errors import StoreUnavailable
from gateway.kernels.ports import AdmissionRefusal, PoolCounts, PooledKernel

log = logging.getLogger(__name__)

T = TypeVar("T")

_NOW = "extract(epoch from now())"
#: Commits of this module do not wait for their WAL flush (a start costs one fsync, not four). Nothing a client is
#: told depends on them alone: a start answers only after the Store committed the kernel's row synchronously, which
#: flushes the WAL up to it, this module's earlier commits (admission, claim) included. A database crash can only
#: lose the admission or claim of a start that never answered: its pending start stops counting, its claimed pool
#: kernel (removed by the failed start) is dropped by the janitor.
_ASYNCHRONOUS_COMMIT = {"options": "-c synchronous_commit=off"}
#: PostgreSQL gives up on a silent leader connection after about 5 + 2 * 3 s (both ends: a partition frees the
#: lock for another replica, and the partitioned holder learns it lost it).
_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}

_LIVE = "SELECT count(*) FROM kernels k WHERE k.instance = :instance AND k.state <> 'dead'"
_PENDING = (
    "SELECT count(*) FROM admissions a WHERE a.instance = :instance AND a.expires_at > " + _NOW +
    " AND NOT EXISTS (SELECT 1 FROM kernels k WHERE k.id = a.kernel_id)"
)  # fmt: skip
#: Live kernels of every replica plus pending starts (one whose kernel is stored is counted as that kernel).
_COUNT_ALL = text(f"SELECT ({_LIVE}) + ({_PENDING})")
_COUNT_MINE = text(f"SELECT ({_LIVE} AND k.owner = :owner) + ({_PENDING} AND a.owner = :owner)")
_CLAIM = text(
    "UPDATE pool_kernels p SET state = 'claimed', hmac_key = '', claimed_at = " + _NOW + " FROM ("
    " SELECT kernel_id, hmac_key FROM pool_kernels"
    " WHERE instance = :instance AND runtime = :runtime AND state = 'ready'"
    " ORDER BY array_position(CAST(:prefer AS bigint[]), kernel_id) NULLS LAST, ready_at"
    " LIMIT 1 FOR UPDATE SKIP LOCKED) picked"
    " WHERE p.kernel_id = picked.kernel_id"
    " RETURNING p.kernel_id, p.uuid, p.runtime, p.sandbox, picked.hmac_key, p.ready_at"
)


class SqlCoordination:
    """The ``Coordination`` of one deployment (``instance``) on a PostgreSQL engine. ``close()`` at the end."""

    def __init__(self, url: URL, instance: str) -> None:
        if url.get_backend_name() != "postgresql":
            raise ValueError("several replicas share their state on PostgreSQL only")
        self.engine = create_engine(url, pool_size=4, max_overflow=4, connect_args=_ASYNCHRONOUS_COMMIT)
        self.instance = instance
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coordination")
        self._leader_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leader-lock")
        self._lock_engine = create_engine(url, poolclass=NullPool, connect_args=_KEEPALIVE)
        self._lock_connection: Connection | None = None
        self._held = False

    async def close(self) -> None:
        await self.resign()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._leader_thread, self._lock_engine.dispose)
        self._leader_thread.shutdown(wait=True)
        self._threads.shutdown(wait=True)
        await asyncio.to_thread(self.engine.dispose)

    # --- plumbing -----------------------------------------------------------------------------------------

    async def _do(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction on a thread of this module; return once it is committed."""

        def run() -> T:
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except SQLAlchemyError as error:
                raise StoreUnavailable(f"Database error: {error.__class__.__name__}: {error}") from error

        return await asyncio.get_running_loop().run_in_executor(self._threads, run)

    def _lock_key(self, role: str) -> dict[str, str]:
        return {"key": f"jupycell-{role}:{self.instance}"}

    # --- admission ----------------------------------------------------------------------------------------

    async def admit(self, owner: str | None, max_kernels: int, max_per_key: int, ttl: float) -> str | AdmissionRefusal:
        ticket = secrets.token_hex(16)

        def admit(connection: Connection) -> str | AdmissionRefusal:
            lock = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
            connection.execute(lock, self._lock_key("admission"))
            values = {"instance": self.instance, "owner": owner}
            if connection.execute(_COUNT_ALL, values).scalar_one() >= max_kernels:
                return AdmissionRefusal("max_kernels")
            if owner is not None and connection.execute(_COUNT_MINE, values).scalar_one() >= max_per_key:
                return AdmissionRefusal("max_kernels_per_key")
            connection.execute(
                text(
                    "INSERT INTO admissions (ticket, instance, owner, kernel_id, expires_at)"
                    " VALUES (:ticket, :instance, :owner, NULL, " + _NOW + " + :ttl)"
                ),
                {**values, "ticket": ticket, "ttl": ttl},
            )
            return ticket

        return await self._do(admit)

    async def bind(self, ticket: str, kernel_id: int) -> None:
        await self._do(
            lambda c: c.execute(
                text("UPDATE admissions SET kernel_id = :kernel_id WHERE ticket = :ticket"),
                {"ticket": ticket, "kernel_id": kernel_id},
            )
        )

    def release(self, ticket: str) -> None:
        def forget() -> None:
            try:
                with self.engine.begin() as connection:
                    connection.execute(text("DELETE FROM admissions WHERE ticket = :ticket"), {"ticket": ticket})
            except SQLAlchemyError as error:  # it expires anyway
                log.warning("could not forget admitted start %s: %s", ticket, error)

        self._threads.submit(forget)

    async def expire_admissions(self) -> int:
        return await self._do(
            lambda c: (
                c.execute(
                    text("DELETE FROM admissions WHERE instance = :instance AND expires_at < " + _NOW),
                    {"instance": self.instance},
                ).rowcount
            )
        )

    # --- the pool -----------------------------------------------------------------------------------------

    async def reserve(self, kernel_id: int, jupyter_id: str, runtime: str, filler: str) -> None:
        await self._do(
            lambda c: c.execute(
                text(
                    "INSERT INTO pool_kernels (kernel_id, instance, uuid, runtime, state, filler, container_id,"
                    " sandbox, hmac_key, created_at) VALUES (:kernel_id, :instance, :uuid, :runtime, 'starting',"
                    " :filler, '', '{}', '', " + _NOW + ")"
                ),
                {
                    "kernel_id": kernel_id,
                    "instance": self.instance,
                    "uuid": jupyter_id,
                    "runtime": runtime,
                    "filler": filler,
                },
            )  # fmt: skip
        )

    async def mark_ready(self, kernel_id: int, sandbox: dict[str, Any], hmac_key: str) -> bool:
        node = sandbox.get("node")
        values = {
            "kernel_id": kernel_id,
            "sandbox": json.dumps(sandbox),
            "hmac_key": hmac_key,
            "container_id": str(sandbox.get("container_id", "")),
            "node": None if node is None else str(node),
        }
        updated = await self._do(
            lambda c: c.execute(
                text(
                    "UPDATE pool_kernels SET state = 'ready', sandbox = CAST(:sandbox AS json), hmac_key = :hmac_key,"
                    " container_id = :container_id, node = :node, ready_at = " + _NOW +
                    " WHERE kernel_id = :kernel_id AND state = 'starting'"
                ),
                values,
            ).rowcount
        )  # fmt: skip
        return bool(updated)

    async def claim(self, runtime: str, prefer: Collection[int] = ()) -> PooledKernel | None:
        values = {"instance": self.instance, "runtime": runtime, "prefer": list(prefer)}
        row = await self._do(lambda c: c.execute(_CLAIM, values).first())
        return None if row is None else _pooled(row)

    async def ready(self, runtime: str, limit: int) -> list[PooledKernel]:
        rows = await self._do(
            lambda c: c.execute(
                text(
                    "SELECT kernel_id, uuid, runtime, sandbox, hmac_key, ready_at FROM pool_kernels"
                    " WHERE instance = :instance AND runtime = :runtime AND state = 'ready'"
                    " ORDER BY ready_at LIMIT :limit"
                ),
                {"instance": self.instance, "runtime": runtime, "limit": limit},
            ).all()
        )
        return [_pooled(row) for row in rows]

    async def drop(self, kernel_id: int) -> bool:
        deleted = await self._do(
            lambda c: (
                c.execute(
                    text("DELETE FROM pool_kernels WHERE kernel_id = :kernel_id AND state <> 'claimed'"),
                    {"kernel_id": kernel_id},
                ).rowcount
            )
        )
        return bool(deleted)

    async def drop_container(self, container_id: str) -> int | None:
        if not container_id:
            return None
        row = await self._do(
            lambda c: c.execute(
                text(
                    "DELETE FROM pool_kernels WHERE instance = :instance AND container_id = :container_id"
                    " AND state = 'ready' RETURNING kernel_id"
                ),
                {"instance": self.instance, "container_id": container_id},
            ).first()
        )
        return None if row is None else int(row.kernel_id)

    async def counts(self, runtime: str) -> PoolCounts:
        rows = await self._do(
            lambda c: c.execute(
                text(
                    "SELECT state, count(*) AS n FROM pool_kernels WHERE instance = :instance AND runtime = :runtime"
                    " AND state IN ('ready', 'starting') GROUP BY state"
                ),
                {"instance": self.instance, "runtime": runtime},
            ).all()
        )
        found = {row.state: int(row.n) for row in rows}
        return PoolCounts(found.get("ready", 0), found.get("starting", 0))

    async def sweep_claimed(self, older_than: float) -> int:
        return await self._do(
            lambda c: (
                c.execute(
                    text(
                        "DELETE FROM pool_kernels p WHERE p.instance = :instance AND p.state = 'claimed' AND ("
                        " EXISTS (SELECT 1 FROM kernels k WHERE k.id = p.kernel_id)"
                        " OR p.claimed_at < " + _NOW + " - :older_than)"
                    ),
                    {"instance": self.instance, "older_than": older_than},
                ).rowcount
            )
        )

    async def unclaimed(self) -> list[tuple[int, str, str]]:
        rows = await self._do(
            lambda c: c.execute(
                text(
                    "SELECT kernel_id, state, filler FROM pool_kernels"
                    " WHERE instance = :instance AND state IN ('starting', 'ready')"
                ),
                {"instance": self.instance},
            ).all()
        )
        return [(int(row.kernel_id), str(row.state), str(row.filler)) for row in rows]

    async def known_kernel_ids(self) -> set[int]:
        rows = await self._do(
            lambda c: c.execute(
                text(
                    "SELECT id FROM kernels WHERE instance = :instance"
                    " UNION SELECT kernel_id FROM pool_kernels WHERE instance = :instance"
                    " UNION SELECT kernel_id FROM admissions WHERE instance = :instance AND kernel_id IS NOT NULL"
                ),
                {"instance": self.instance},
            ).scalars().all()
        )  # fmt: skip
        return {int(kernel_id) for kernel_id in rows}

    # --- the leader lock ----------------------------------------------------------------------------------

    async def try_acquire(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._leader_thread, self._try_acquire)

    def _try_acquire(self) -> bool:
        try:
            if self._lock_connection is None:
                self._held = False
                self._lock_connection = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            connection = self._lock_connection
            if self._held:
                connection.execute(text("SELECT 1"))  # the lock lives as long as this connection does
            else:
                self._held = bool(
                    connection.execute(
                        text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"), self._lock_key("leader")
                    ).scalar_one()
                )
            return self._held
        except SQLAlchemyError as error:
            log.warning("leader lock: connection lost (%s)", error.__class__.__name__)
            self._drop_lock_connection()
            return False

    def _drop_lock_connection(self) -> None:
        connection, self._lock_connection, held, self._held = self._lock_connection, None, self._held, False
        if connection is not None:
            try:
                if held:  # at once: the server may notice a closed connection a moment later
                    connection.execute(text("SELECT pg_advisory_unlock_all()"))
                connection.close()
            except SQLAlchemyError:
                connection.invalidate()

    async def resign(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._leader_thread, self._drop_lock_connection)


def _pooled(row: Any) -> PooledKernel:
    return PooledKernel(row.kernel_id, row.uuid, row.runtime, dict(row.sandbox), row.hmac_key, row.ready_at)
