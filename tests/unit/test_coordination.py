"""What replicas share on a real PostgreSQL (issue 11): admission exact under concurrency from two coordinations,
pool claims unique, the leader lock held by one and freed when its holder's process dies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.sql import Store
from gateway.adapters.sql.coordination import SqlCoordination
from gateway.adapters.sql.database import database_url
from gateway.kernels.ports import AdmissionRefusal, PoolCounts, PooledKernel
from gateway.settings import Settings
from testing.harness import postgres_database, skip_without_postgres, wait_for
from tests.unit.test_store import record

INSTANCE = "unit"


@pytest.fixture
def settings() -> Iterator[Settings]:
    skip_without_postgres()
    with postgres_database() as url:
        yield Settings(kernels_dir=Path("/tmp/jc-unit"), instance=INSTANCE, database_url=url)


def run(scenario: Callable[..., Awaitable[None]], settings: Settings) -> None:
    async def main() -> None:
        async with deployment(settings) as (store, one, two):
            await scenario(store, one, two)

    asyncio.run(asyncio.wait_for(main(), 50))


class deployment:  # noqa: N801 (an async context manager used like a function)
    """The store (migrated) and two coordinations on their own engines: two replicas."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> tuple[Store, SqlCoordination, SqlCoordination]:
        self.store = await Store.open(self.settings)
        self.replicas = [SqlCoordination(database_url(self.settings), INSTANCE) for _ in range(2)]
        return self.store, self.replicas[0], self.replicas[1]

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.replicas:
            await replica.close()
        await self.store.close()


async def admit_many(replicas: list[SqlCoordination], count: int, max_kernels: int, max_per_key: int = 1000,
                     owner: Any = None) -> list[str | AdmissionRefusal]:  # fmt: skip
    return await asyncio.gather(*(replicas[n % 2].admit(owner, max_kernels, max_per_key, 600) for n in range(count)))


def tickets(results: list[str | AdmissionRefusal]) -> list[str]:
    return [r for r in results if isinstance(r, str)]


# --- admission ------------------------------------------------------------------------------------------------


def test_concurrent_admissions_on_two_replicas_admit_exactly_the_limit(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        await store.add_kernel(record(1))
        await store.add_kernel(record(2, state="dead"))  # dead kernels never count
        results = await admit_many([one, two], 30, max_kernels=8)
        admitted = tickets(results)
        assert len(admitted) == 7  # one live kernel + 7 pending = 8
        assert {r.limit for r in results if isinstance(r, AdmissionRefusal)} == {"max_kernels"}
        # the starts get their kernels, which are stored: each is counted once, not twice
        for n, ticket in enumerate(admitted):
            await (one if n % 2 else two).bind(ticket, 100 + n)
            await store.add_kernel(record(100 + n))
        assert tickets(await admit_many([one, two], 4, max_kernels=8)) == []
        for ticket in admitted:
            one.release(ticket)
        assert tickets(await admit_many([one, two], 4, max_kernels=8)) == []
        await store.update_kernel(100, state="dead")
        assert len(tickets(await admit_many([one, two], 6, max_kernels=8))) == 1

    run(scenario, settings)


def test_concurrent_admissions_per_key_are_exact_and_other_keys_are_not_held_back(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        await store.add_kernel(record(1, owner="alice"))
        results = await admit_many([one, two], 20, max_kernels=100, max_per_key=4, owner="alice")
        assert len(tickets(results)) == 3
        assert {r.limit for r in results if isinstance(r, AdmissionRefusal)} == {"max_kernels_per_key"}
        assert len(tickets(await admit_many([one, two], 6, max_kernels=100, max_per_key=4, owner="bob"))) == 4

    run(scenario, settings)


def test_a_pending_start_stops_counting_when_it_expires(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        assert isinstance(await one.admit(None, 1, 1, -1.0), str)  # its replica is taken as dead already
        assert isinstance(await two.admit(None, 1, 1, 600.0), str)
        assert isinstance(await one.admit(None, 1, 1, 600.0), AdmissionRefusal)
        assert await two.expire_admissions() == 1

    run(scenario, settings)


# --- the pool -------------------------------------------------------------------------------------------------


async def pooled(coordination: SqlCoordination, kernel_id: int, runtime: str = "runc") -> None:
    await coordination.reserve(kernel_id, f"uuid-{kernel_id}", runtime, "filler")
    sandbox = {"container_id": f"c{kernel_id}", "name": f"n{kernel_id}", "connection": {"ip": "x"}, "node": "n1"}
    assert await coordination.mark_ready(kernel_id, sandbox, f"key-{kernel_id}")


def test_concurrent_claims_on_two_replicas_hand_out_each_pool_kernel_once(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        for kernel_id in range(1, 11):
            await pooled(one, kernel_id)
        await pooled(one, 99, runtime="runsc")
        await one.reserve(50, "uuid-50", "runc", "filler")  # still starting: not claimable
        assert await two.counts("runc") == PoolCounts(10, 1)
        claims = await asyncio.gather(*(r.claim("runc") for _ in range(15) for r in (one, two)))
        got = [c for c in claims if isinstance(c, PooledKernel)]
        assert sorted(c.kernel_id for c in got) == list(range(1, 11))
        assert all(c.hmac_key == f"key-{c.kernel_id}" and c.sandbox["node"] == "n1" for c in got)
        assert await one.counts("runc") == PoolCounts(0, 1)
        assert (await two.claim("runsc")).kernel_id == 99  # type: ignore[union-attr]
        for kernel_id in (20, 21, 22):
            await pooled(one, kernel_id)
        preferred = await two.claim("runc", prefer=[404, 22, 21])  # the first one ready, in the claimer's order
        assert preferred is not None and preferred.kernel_id == 22
        assert (await one.claim("runc", prefer=[22])).kernel_id == 20  # type: ignore[union-attr]
        assert (await one.claim("runc")).kernel_id == 21  # type: ignore[union-attr]
        # claimed records stay known (start-up and the janitor leave their containers alone) until stored
        assert {1, 10, 50, 99} <= await two.known_kernel_ids()
        assert not await one.drop(1)  # a claimed kernel is no one else's to drop
        await store.add_kernel(record(1))
        assert await one.sweep_claimed(older_than=600) == 1
        assert await one.sweep_claimed(older_than=-1) == 13  # the rest: claims older than that are forgotten

    run(scenario, settings)


def test_a_dead_pool_container_is_dropped_once(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        await pooled(one, 7)
        results = await asyncio.gather(one.drop_container("c7"), two.drop_container("c7"))
        assert sorted(results, key=str) == [7, None]
        assert await one.claim("runc") is None
        await one.reserve(8, "uuid-8", "runc", "f")
        assert await two.drop(8) and not await one.mark_ready(8, {"container_id": "c8"}, "k")

    run(scenario, settings)


# --- the leader lock ------------------------------------------------------------------------------------------

HOLDER = """
import sys, time, psycopg
with psycopg.connect(sys.argv[1]) as c:
    c.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (sys.argv[2],))
    print("held", flush=True)
    time.sleep(600)
"""


def test_one_replica_leads_and_another_takes_over_when_the_holder_process_is_killed(settings: Settings) -> None:
    async def scenario(store: Store, one: SqlCoordination, two: SqlCoordination) -> None:
        assert await one.try_acquire() and await one.try_acquire()
        assert not await two.try_acquire()
        await one.resign()
        assert await two.try_acquire() and not await one.try_acquire()
        await two.resign()
        # a holder that is killed (kill -9) frees the lock with its connection
        url = one.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, f"jupycell-leader:{INSTANCE}"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            assert not await one.try_acquire() and not await two.try_acquire()
            holder.kill()
            holder.wait()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, lambda: wait_for("the lock freed", lambda: asyncio.run_coroutine_threadsafe(
                    two.try_acquire(), loop).result(), timeout=30, interval=0.2)
            )  # fmt: skip
            assert not await one.try_acquire()
        finally:
            holder.kill()
            holder.wait()

    run(scenario, settings)
