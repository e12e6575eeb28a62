"""Several replicas of one deployment (issue 11) on fake adapters: admission counted across replicas, the shared
warm pool claimed exactly once, the leader's filling and sweeping, a new leader when the old one goes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.errors import TooManyKernels
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.kernels.shared_pool import SharedKernelPool
from gateway.settings import Settings
from tests.fakes import FakeDeployment, FakeSandbox, fake_replicas


def settings(**values: Any) -> Settings:
    defaults = {
        "interrupt_grace": 0.2, "output_flush_interval": 0.05, "instance": "unit", "pool_size": 0,
        "coordination_interval": 0.05, "on_stop": "keep",
    }  # fmt: skip
    return Settings(**{**defaults, **values})


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def replicas(count: int = 2, **values: Any) -> tuple[list[KernelService], FakeDeployment]:
    services, deployment = fake_replicas(settings(**values), count, start_delay=0.01)
    for service in services:
        await service.start_up()
    return services, deployment


def engine(service: KernelService) -> FakeSandbox:
    assert isinstance(service.backend, FakeSandbox)
    return service.backend


def ready(deployment: FakeDeployment) -> int:
    return sum(r["state"] == "ready" for r in deployment.pool.values())


async def starts(services: list[KernelService], count: int, owner: str | None = None) -> list[Kernel | BaseException]:
    """``count`` concurrent starts spread over the replicas in turn."""
    return await asyncio.gather(
        *(services[n % len(services)].start(owner) for n in range(count)), return_exceptions=True
    )


def runs_on(services: list[KernelService], kernel: Kernel) -> KernelService:
    """The replica that started the kernel (and runs it)."""
    return next(service for service in services if kernel in service.registry)


async def close(services: list[KernelService]) -> None:
    for service in services:
        await service.shut_down()


# --- admission ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [0, 2])
def test_max_kernels_holds_exactly_across_replicas_under_concurrent_starts(pool_size: int) -> None:
    async def scenario() -> None:
        services, _ = await replicas(max_kernels=5, pool_size=pool_size)
        results = await starts(services, 12)
        started = [r for r in results if isinstance(r, Kernel)]
        assert len(started) == 5
        assert all(isinstance(r, TooManyKernels) for r in results if not isinstance(r, Kernel))
        assert len({k.id for k in started}) == 5
        # a shut-down frees a slot on every replica
        await runs_on(services, started[0]).shutdown(started[0].id)
        assert isinstance(await services[1].start(), Kernel)
        with pytest.raises(TooManyKernels, match="max_kernels"):
            await services[0].start()
        await close(services)

    run(scenario)


def test_per_key_limit_holds_exactly_across_replicas_and_other_keys_still_start() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(max_kernels_per_key=3)
        results = await starts(services, 8, owner="alice")
        assert sum(isinstance(r, Kernel) for r in results) == 3
        refusals = [r for r in results if not isinstance(r, Kernel)]
        assert all(isinstance(r, TooManyKernels) and "max_kernels_per_key" in str(r) for r in refusals)
        assert isinstance(await services[1].start("bob"), Kernel)
        assert deployment.admissions == {}  # every pending start was forgotten
        await close(services)

    run(scenario)


def test_a_failed_start_frees_its_slot_and_an_expired_pending_start_stops_counting() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(max_kernels=1)
        engine(services[0]).fail_starts = 1
        with pytest.raises(Exception, match="refused"):
            await services[0].start()
        assert deployment.admissions == {}
        # a replica died mid-start: its pending start counts until it expires
        deployment.admissions["dead"] = {"owner": None, "kernel_id": None, "expires_at": 0.0 + 10**12}
        with pytest.raises(TooManyKernels):
            await services[1].start()
        deployment.admissions["dead"]["expires_at"] = 0.0
        assert isinstance(await services[1].start(), Kernel)
        await close(services)

    run(scenario)


# --- the shared pool ------------------------------------------------------------------------------------------


def test_only_the_leader_fills_and_every_replica_claims_each_pool_kernel_once() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=3)
        assert deployment.leader == "r0"
        await until(lambda: ready(deployment) == 3)
        pools = [s.pool for s in services]
        assert all(isinstance(p, SharedKernelPool) for p in pools)
        assert [s.pool_status()["leader"] for s in services] == [True, False]
        fillers = {r["filler"] for r in deployment.pool.values()}
        assert fillers == {services[0].pool.filler}  # type: ignore[attr-defined]
        results = await starts(services, 6)
        kernels = [r for r in results if isinstance(r, Kernel)]
        assert len(kernels) == 6 and len({k.id for k in kernels}) == 6
        assert len({k.container_id for k in kernels}) == 6
        hits = sum(s.pool_status()["hits"] for s in services)
        assert hits == 3  # the 3 ready ones, each claimed once; the rest started cold or from refills
        # the claimer connected its own client to the pooled container, which kept nothing of anyone else
        pooled = [k for k in kernels if engine(services[0]).containers[k.container_id].pooled]
        assert len(pooled) >= 3
        for kernel in kernels:
            result = await runs_on(services, kernel).execute(kernel, f"x = {kernel.id}\nprint(x)")
            assert result.cell.outputs[0]["text"] == f"{kernel.id}\n"
        await until(lambda: ready(deployment) == 3)  # the leader refilled
        await close(services)

    run(scenario)


def test_a_claimed_pool_kernel_whose_container_died_is_removed_and_the_next_one_claimed() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=2)
        await until(lambda: ready(deployment) == 2)
        first = min((r["ready_at"], k) for k, r in deployment.pool.items())[1]
        engine(services[1]).die(first, event=False)  # nobody heard of it
        await services[1].pool.close()  # connections made ahead of time closed: the claim connects anew
        services[1].pool._closed = False  # type: ignore[attr-defined]
        kernel = await services[1].start()
        assert kernel.id != first and engine(services[1]).by_kernel(kernel.id).pooled  # type: ignore[union-attr]
        await until(lambda: first in engine(services[1]).removed)
        assert services[1].pool_status()["failures"] == 1
        await close(services)

    run(scenario)


def test_a_claim_takes_a_kernel_the_replica_is_already_connected_to_without_connecting_again() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=2)
        pool = services[1].pool
        assert isinstance(pool, SharedKernelPool)
        await until(lambda: len(pool._ahead) == 2)
        connector = services[1].lifecycle.launcher.connector
        connections = len(connector.connections)  # type: ignore[attr-defined]
        kernel = await services[1].start()
        assert pool.hits == 1 and len(connector.connections) == connections  # type: ignore[attr-defined]
        assert kernel.id not in pool._ahead
        # the other replica's connection to that kernel is closed on its next look at the pool
        other = services[0].pool
        assert isinstance(other, SharedKernelPool)
        await until(lambda: kernel.id not in other._ahead)
        result = await services[1].execute(kernel, "print(6 * 7)")
        assert result.cell.outputs[0]["text"] == "42\n"
        await close(services)

    run(scenario)


def test_an_unclaimed_pool_container_that_dies_is_dropped_and_replaced() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=2)
        await until(lambda: ready(deployment) == 2)
        dead = next(iter(deployment.pool))
        engine(services[0]).die(dead)  # the engine tells every replica
        await until(lambda: dead not in deployment.pool and ready(deployment) == 2)
        assert dead in engine(services[0]).removed
        await close(services)

    run(scenario)


# --- the leader -----------------------------------------------------------------------------------------------


def test_when_the_leader_goes_another_replica_takes_over_and_fills_the_pool() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=2)
        await until(lambda: ready(deployment) == 2)
        await services[0].shut_down()  # on_stop=keep: its pool kernels stay for the other replica
        await until(lambda: deployment.leader == "r1")
        assert services[1].pool_status()["leader"] is True
        await services[1].start()
        await services[1].start()
        await until(lambda: ready(deployment) == 2)
        fillers = {r["filler"] for r in deployment.pool.values() if r["state"] == "ready"}
        assert services[1].pool.filler in fillers  # type: ignore[attr-defined]
        await close(services[1:])

    run(scenario)


def test_the_janitor_drops_unfinished_pool_records_and_orphans_seen_twice() -> None:
    async def scenario() -> None:
        services, deployment = await replicas(pool_size=0, cull_interval=3600)
        janitor = services[0].janitor
        assert janitor is not None and services[0].leader is not None and services[0].leader.is_leader
        backend = engine(services[0])
        # a previous leader died while starting a pool kernel; and a container nobody knows
        deployment.pool[7] = {"uuid": "u", "runtime": "runc", "state": "starting", "filler": "gone", "sandbox": {},
                              "key": "", "ready_at": None, "claimed_at": None}  # fmt: skip
        await backend.start(7, "u", "runc", {}, pooled=True)
        await backend.start(8, "v", "runc", {})
        kept = await services[1].start()
        await janitor.sweep()
        assert 7 not in deployment.pool and backend.by_kernel(7) is None
        assert backend.by_kernel(8) is not None  # unknown once: a margin
        await janitor.sweep()
        assert backend.by_kernel(8) is None
        assert backend.by_kernel(kept.id) is not None
        await close(services)

    run(scenario)
