"""Issue 11: the core as one of several replicas, on fakes: routing to the owner, adoption with memory kept and
open runs interrupted, start-up that leaves other replicas' kernels alone, a stale owner dropping its kernel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from gateway.kernels.kernel import Kernel, KernelEvent, KernelState
from gateway.kernels.service import KernelService
from gateway.settings import Settings
from tests.fakes import FakeDeployment, FakeOwnership, FakeReplicas, FakeSandbox, FakeStore


def settings(**values: Any) -> Settings:
    defaults = {"interrupt_grace": 0.2, "output_flush_interval": 0.05, "instance": "unit", "pool_size": 0}
    return Settings(**{**defaults, **values})


def run(scenario: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, 20))


def ownership(service: KernelService) -> FakeOwnership:
    assert service.replicas is not None and isinstance(service.replicas.ownership, FakeOwnership)
    return service.replicas.ownership


async def two_replicas() -> tuple[FakeReplicas, KernelService, KernelService]:
    shared = FakeReplicas(FakeStore(), FakeSandbox())
    a, b = shared.service("a", settings()), shared.service("b", settings())
    await a.start_up()
    await b.start_up()
    return shared, a, b


async def started_on(service: KernelService) -> Kernel:
    kernel = await service.start()
    ownership(service).own(kernel.id)  # what the SQL store does as it inserts the kernel
    return kernel


def test_a_kernel_of_another_live_replica_is_forwarded_and_an_own_one_served_here() -> None:
    async def scenario() -> None:
        _, a, b = await two_replicas()
        kernel = await started_on(a)
        assert await a.locate(kernel.id) is None
        assert await b.locate(kernel.id) == "http://a"
        assert await b.locate(kernel.id, forwarded=True) is None  # never sent on twice
        assert await b.locate(424242) is None  # unknown: the route says 404

    run(scenario())


def test_a_kernel_being_shut_down_is_not_adopted_back_by_its_own_replica() -> None:
    async def scenario() -> None:
        shared, a, _ = await two_replicas()
        kernel = await started_on(a)
        shared.sandbox.removal_gate = asyncio.Event()  # the container's removal takes a while (a node's agent)
        shutdown = asyncio.ensure_future(a.shutdown(kernel.id, "it was idle"))
        while kernel in a.registry:
            await asyncio.sleep(0.01)
        assert await a.locate(kernel.id) is None  # served here: the route says 404
        assert kernel.id not in {k.id for k in a.registry} and shared.owners[kernel.id] == ("a", 1)
        shared.sandbox.removal_gate.set()
        await shutdown
        assert kernel.id not in shared.store.kernels

    run(scenario())


def test_the_kernel_of_a_dead_replica_is_adopted_with_its_memory_and_its_open_run_interrupted() -> None:
    async def scenario() -> None:
        shared, a, b = await two_replicas()
        kernel = await started_on(a)
        await a.add_cell(kernel, 1, "x = 41")
        assert (await a.run_cell(kernel, 1)).status == "ok"
        shared.store.begin_run("in-flight", kernel.id, kernel.notebook.get(1), 0.0)
        shared.alive.discard("a")  # a is killed: its lease expires

        assert await b.locate(kernel.id) is None  # adopted: served here now
        adopted = b.get(kernel.id)
        assert adopted is not kernel and shared.owners[kernel.id] == ("b", 2)
        assert shared.store.runs["in-flight"]["state"] == "interrupted"
        container = shared.sandbox.by_kernel(kernel.id)
        assert container is not None and container.interrupted.is_set()  # what ran was interrupted
        result = await b.execute(adopted, "print(x + 1)")
        assert result.outputs[0]["text"] == "42\n"  # same container, same memory

    run(scenario())


def test_a_kernel_whose_replica_and_node_are_lost_together_is_reported_with_the_node_s_loss() -> None:
    """A stopped Swarm node takes a replica and its kernel's node: the adopter finds the node silent (the engine's
    SIGINT cannot be sent) and reports the cause the backend gives, cells kept; not a failed adoption."""

    async def scenario() -> None:
        shared, a, b = await two_replicas()
        kernel = await started_on(a)
        await a.add_cell(kernel, 1, "x = 41")
        container = shared.sandbox.by_kernel(kernel.id)
        assert container is not None
        container.lost_with = "node n1 lost"
        shared.alive.discard("a")

        assert await b.locate(kernel.id) is None  # adopted, and served here: dead, with the cause
        adopted = b.get(kernel.id)
        assert adopted.state is KernelState.DEAD and adopted.last_death == "node n1 lost"
        assert adopted.notebook.get(1).code == "x = 41"
        await b.restart(adopted)  # a fresh container, elsewhere
        assert (await b.execute(adopted, "print(1 + 1)")).outputs[0]["text"] == "2\n"

    run(scenario())


def test_the_sweep_adopts_without_a_request() -> None:
    async def scenario() -> None:
        shared = FakeReplicas(FakeStore(), FakeSandbox())
        a, b = shared.service("a", settings()), shared.service("b", settings(lease_seconds=2))
        await a.start_up()
        await b.start_up()
        kernel = await started_on(a)
        shared.alive.discard("a")
        while kernel.id not in {k.id for k in b.registry}:
            await asyncio.sleep(0.05)  # the sweep runs every lease / 3
        assert shared.owners[kernel.id][0] == "b"

    run(scenario())


def test_start_up_leaves_the_kernels_and_containers_of_live_replicas_alone() -> None:
    async def scenario() -> None:
        shared = FakeReplicas(FakeStore(), FakeSandbox())
        a = shared.service("a", settings())
        await a.start_up()
        kernel = await started_on(a)
        c = shared.service("c", settings())
        await c.start_up()
        assert kernel.id not in {k.id for k in c.registry}
        assert shared.sandbox.by_kernel(kernel.id) is not None and kernel.id not in shared.sandbox.removed
        await c.shut_down()  # on_stop=shutdown: its own kernels only
        assert shared.sandbox.by_kernel(kernel.id) is not None
        assert await a.locate(kernel.id) is None

    run(scenario())


def test_a_warm_pool_left_by_a_deployment_that_was_killed_is_removed_by_its_first_replica_only() -> None:
    async def scenario() -> None:
        store = FakeStore()
        shared = FakeReplicas(store, FakeSandbox(), FakeDeployment(store))
        assert shared.deployment is not None
        for kernel_id in (7, 8):  # what a killed leader left: two ready pool kernels
            handle = await shared.sandbox.start(kernel_id, f"uuid-{kernel_id}", "runc", {}, pooled=True)
            shared.deployment.pool[kernel_id] = {
                "uuid": f"uuid-{kernel_id}", "runtime": "runc", "sandbox": handle.to_state(), "key": "k",
                "ready_at": 0.0, "state": "ready", "filler": "gone",
            }  # fmt: skip
        a = shared.service("a", settings())
        shared.alive.add("other")  # another replica is up: its pool stays
        await a.start_up()
        assert set(shared.deployment.pool) == {7, 8} and shared.sandbox.by_kernel(7) is not None
        await a.shut_down()
        shared.alive.clear()  # every replica is gone
        b = shared.service("b", settings())
        await b.start_up()
        assert shared.deployment.pool == {}
        assert shared.sandbox.by_kernel(7) is None and shared.sandbox.by_kernel(8) is None

    run(scenario())


def test_a_stale_owner_drops_the_kernel_leaves_its_container_and_forwards() -> None:
    async def scenario() -> None:
        shared, a, b = await two_replicas()
        kernel = await started_on(a)
        events: list[KernelEvent] = []
        kernel.listeners.add(lambda _, event: events.append(event))
        shared.alive.discard("a")
        ownership(a).valid = False  # a was paused past its lease
        assert await b.locate(kernel.id) is None  # b adopts
        shared.alive.add("a")  # a resumes
        assert await a.locate(kernel.id) == "http://b"
        assert kernel.id not in {k.id for k in a.registry} and not ownership(a).holds(kernel.id)
        assert events == [KernelEvent.MOVED] and kernel.client is None
        assert shared.sandbox.by_kernel(kernel.id) is not None  # the container is b's now, untouched

    run(scenario())


def test_a_refused_write_drops_the_kernel() -> None:
    async def scenario() -> None:
        _, a, _ = await two_replicas()
        kernel = await started_on(a)
        lost = ownership(a).on_lost
        assert lost is not None
        lost(kernel.id)  # what the SQL store calls when it refuses a stale write
        assert kernel.id not in {k.id for k in a.registry}

    run(scenario())


def test_a_listing_learns_the_other_replicas_and_the_stored_kernels_of_those_that_did_not_answer() -> None:
    async def scenario() -> None:
        _, a, b = await two_replicas()
        alices = await a.start(owner="alice")
        ownership(a).own(alices.id)
        ownership(a).own((await a.start(owner="bob")).id)
        await a.add_cell(alices, 1, "x = 1")
        assert [(p.replica_id, p.url) for p in await b.other_replicas()] == [("a", "http://a")]
        assert await b.kernels_stored_elsewhere(["a"], lambda owner: True) == []  # a answered: nothing stored

        (stored,) = await b.kernels_stored_elsewhere([], lambda owner: owner == "alice")  # a did not answer
        assert (stored.id, stored.owner, stored.state, len(stored.notebook.cells)) == (alices.id, "alice", "idle", 1)
        assert stored is not alices and not any(k.id == alices.id for k in b.registry)  # a view, not served by b

    run(scenario())
