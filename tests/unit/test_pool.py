"""KernelPool's bookkeeping with the container launch replaced by a fake (no Docker)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.kernels.pool import KernelPool, ReadyKernel
from gateway.sandbox.docker_sandbox import SandboxSpec
from gateway.settings import Settings


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakePool(KernelPool):
    """Launches are futures the test resolves; disposals are recorded."""

    def __init__(self, size: int, parallel: int = 2) -> None:
        settings = Settings(pool_size=size, pool_parallel_starts=parallel, kernels_dir=Path("/tmp/jc-unit"))
        sandbox = SimpleNamespace(spec=SandboxSpec.from_settings(settings))
        super().__init__(settings, sandbox, lambda: 0)  # type: ignore[arg-type]
        self.launches: list[asyncio.Future[ReadyKernel]] = []
        self.disposed: list[str] = []
        self.count = 0

    async def _launch(self) -> ReadyKernel:
        future: asyncio.Future[ReadyKernel] = asyncio.get_running_loop().create_future()
        self.launches.append(future)
        return await future

    def finish(self, index: int) -> ReadyKernel:
        self.count += 1
        kernel = ReadyKernel(self.count, f"c{self.count}", Path(f"/tmp/p{self.count}"), FakeClient(), {}, 0.0)  # type: ignore[arg-type]
        self.launches[index].set_result(kernel)
        return kernel

    async def _dispose(self, kernel: ReadyKernel) -> None:
        kernel.client.close()
        self.disposed.append(kernel.container_id)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_fills_at_most_parallel_at_a_time_and_claims_oldest_first() -> None:
    async def scenario() -> None:
        pool = FakePool(size=3, parallel=2)
        pool.start()
        await settle()
        assert len(pool.launches) == 2 and pool.status()["starting"] == 2
        first = pool.finish(0)
        await settle()
        assert len(pool.launches) == 3  # a slot freed: the third starts
        pool.finish(1), pool.finish(2)
        await settle()
        assert pool.status()["ready"] == 3 and len(pool.launches) == 3
        assert pool.claim() is first
        await settle()
        assert len(pool.launches) == 4  # refilling
        assert pool.status()["hits"] == 1 and pool.status()["misses"] == 0
        await pool.close()
        assert pool.disposed == ["c2", "c3"]

    run(scenario())


def test_empty_pool_is_a_miss_not_an_error_and_size_zero_is_off() -> None:
    async def scenario() -> None:
        pool = FakePool(size=1)
        assert pool.claim() is None and pool.status()["misses"] == 1
        off = FakePool(size=0)
        off.start()
        await settle()
        assert off.claim() is None and off.launches == [] and off.status()["misses"] == 0
        await pool.close()

    run(scenario())


def test_a_claimed_kernel_is_never_handed_out_again() -> None:
    async def scenario() -> None:
        pool = FakePool(size=2)
        pool.start()
        await settle()
        pool.finish(0), pool.finish(1)
        await settle()
        claimed = [pool.claim(), pool.claim()]
        assert pool.claim() is None
        assert len({k.container_id for k in claimed if k}) == 2
        await pool.close()
        assert pool.disposed == []  # claimed kernels are the manager's now, not the pool's

    run(scenario())


def test_a_dead_pooled_kernel_is_dropped_and_replaced() -> None:
    async def scenario() -> None:
        pool = FakePool(size=1)
        pool.start()
        await settle()
        pool.finish(0)
        await settle()
        pool.discard("c1")
        await settle()
        assert pool.disposed == ["c1"] and pool.status()["ready"] == 0 and len(pool.launches) == 2
        pool.discard("unknown")  # not the pool's: ignored
        await pool.close()

    run(scenario())


def test_failed_starts_back_off_and_are_counted() -> None:
    async def scenario() -> None:
        pool = FakePool(size=1, parallel=1)
        pool.start()
        await settle()
        pool.launches[0].set_exception(RuntimeError("image missing"))
        await settle()
        status = pool.status()
        assert status["failures"] == 1 and pool._backoff > 0
        assert len(pool.launches) == 1  # the retry waits out its back-off first
        await pool.close()

    run(scenario())


@pytest.mark.parametrize("size", [-1, 1001])
def test_pool_size_is_validated(size: int) -> None:
    with pytest.raises(ValueError, match="pool_size"):
        Settings(pool_size=size)
