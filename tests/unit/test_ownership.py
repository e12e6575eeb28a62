"""Issue 11: kernel ownership on a real database (SQLite file, and PostgreSQL when a test server is configured):
two replicas' stores on one database, leases, adoption with an epoch, and the fencing of a stale owner's writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.adapters.sql import Store
from gateway.adapters.sql.ownership import Ownership
from gateway.errors import KernelMoved
from gateway.notebook import Cell
from gateway.settings import Settings
from tests.unit.test_store import record
from tests.unit.test_store import settings as settings  # noqa: F401 (the database fixture: SQLite and PostgreSQL)


async def replica(settings: Settings, name: str, lease: float = 30.0) -> Ownership:
    store = await Store.open(settings)
    ownership = Ownership(
        store, instance="unit", replica_id=name, url=f"http://{name}:8000", lease_seconds=lease, host=f"host-{name}"
    )
    await ownership.join()
    return ownership


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_stale_owner_s_writes_are_refused_once_another_replica_adopted_the_kernel(settings: Settings) -> None:
    async def scenario() -> None:
        a, b = await replica(settings, "a"), await replica(settings, "b")
        lost: list[int] = []
        a.watch_lost(lost.append)
        await a.store.add_kernel(record(7))
        await a.store.add_cell(7, Cell(number=1, code="x = 1"))
        assert a.epochs == {7: 1} and a.lease_valid()

        location = await b.locate(7)
        assert location is not None and (location.owner, location.epoch, location.owner_alive) == ("a", 1, True)
        assert location.owner_url == "http://a:8000"
        assert await b.adopt(7, 1, "gone") is None  # a's lease is alive: no adoption
        assert await b.orphans() == []

        await a.leave()  # as if a's lease had expired
        assert not a.lease_valid()
        assert [o.kernel_id for o in await b.orphans()] == [7]
        adopted = await b.adopt(7, 1, "gone")
        assert adopted is not None and adopted.record.id == 7 and [c.code for c in adopted.record.cells] == ["x = 1"]
        assert b.epochs == {7: 2}
        assert await b.adopt(7, 1, "gone") is None  # the epoch seen is stale: adopted once only

        with pytest.raises(KernelMoved):  # the stale owner (epoch 1) may not write
            await a.store.save_cell(7, Cell(number=1, code="x = 'stale'"))
        with pytest.raises(KernelMoved):
            await a.store.delete_kernel(7)
        await asyncio.sleep(0)  # on_lost is called on the loop
        assert lost == [7] and not a.holds(7)
        await b.store.save_cell(7, Cell(number=1, code="x = 'new owner'"))  # epoch 2 writes
        (stored,) = await b.store.load_kernels("unit")
        assert [c.code for c in stored.cells] == ["x = 'new owner'"]
        for ownership in (a, b):
            await ownership.store.close()

    run(scenario())


def test_start_up_claims_only_kernels_no_live_replica_owns(settings: Settings) -> None:
    async def scenario() -> None:
        a = await replica(settings, "a")
        for kernel_id in (1, 2):
            await a.store.add_kernel(record(kernel_id))
        b = await replica(settings, "b")
        assert await b.claim_orphans() == [] and await b.store.load_kernels("unit") == []
        assert await b.others_alive()
        await a.leave()
        assert sorted(await b.claim_orphans()) == [1, 2]
        assert sorted(r.id for r in await b.store.load_kernels("unit")) == [1, 2]
        assert not await b.others_alive()
        for ownership in (a, b):
            await ownership.store.close()

    run(scenario())


def test_adoption_closes_the_runs_the_dead_owner_left_open(settings: Settings) -> None:
    async def scenario() -> None:
        a, b = await replica(settings, "a"), await replica(settings, "b")
        await a.store.add_kernel(record(3))
        cell = Cell(number=1, code="while True: pass")
        await a.store.add_cell(3, cell)
        a.store.begin_run("run1", 3, cell, 1.0)
        a.store.save_partial_outputs("run1", [{"output_type": "stream", "name": "stdout", "text": "so far\n"}], False)
        await a.leave()
        adopted = await b.adopt(3, 1, "the replica stopped")
        assert adopted is not None and adopted.had_open_runs
        (stored,) = adopted.record.cells
        assert stored.status == "interrupted" and stored.outputs[0]["text"] == "so far\n"
        assert (await b.store.runs_of(3))[0]["state"] == "interrupted"
        for ownership in (a, b):
            await ownership.store.close()

    run(scenario())


def test_unknown_and_absurd_kernel_references_are_not_found(settings: Settings) -> None:
    async def scenario() -> None:
        a = await replica(settings, "a")
        assert await a.locate(99) is None
        assert await a.locate("9" * 30) is None
        assert await a.locate("not-a-uuid' OR 1=1 --") is None
        await a.store.close()

    run(scenario())


def test_listings_learn_the_live_replicas_and_the_kernels_no_answering_replica_serves(settings: Settings) -> None:
    async def scenario() -> None:
        a, b, c = await replica(settings, "a"), await replica(settings, "b"), await replica(settings, "c")
        await a.store.add_kernel(record(1))
        await b.store.add_kernel(record(2))
        await c.store.add_kernel(record(3, owner="alice"))
        await c.store.add_cell(3, Cell(number=1, code="x = 1"))
        assert [(p.replica_id, p.url) for p in await a.peers()] == [("b", "http://b:8000"), ("c", "http://c:8000")]
        assert await a.stored_elsewhere(["b", "c"]) == []  # every replica answered: nothing from the store
        (stored,) = await a.stored_elsewhere(["b"])  # c did not answer: its kernel as stored, cells included
        assert (stored.id, stored.owner, stored.state, [cell.code for cell in stored.cells]) == (
            3,
            "alice",
            "idle",
            ["x = 1"],
        )

        await c.leave()  # c is dead, its kernel not adopted yet: no longer asked, still listed from the store
        assert [p.replica_id for p in await a.peers()] == ["b"]
        assert [r.id for r in await a.stored_elsewhere(["b"])] == [3]
        assert [r.id for r in await b.stored_elsewhere(["a"])] == [3]  # never this replica's own
        for ownership in (a, b, c):
            await ownership.store.close()

    run(scenario())
