"""KernelPool's bookkeeping with a launcher whose launches the test completes (no Docker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.kernels.launcher import Launched
from gateway.kernels.pool import KernelPool
from gateway.kernels.ports import SandboxHandle
from gateway.settings import Settings


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class ControlledLauncher:
    """Launches are futures the test resolves; teardowns are recorded."""

    def __init__(self) -> None:
        self.launches: list[asyncio.Future[Launched]] = []
        self.disposed: list[str] = []
        self.count = 0

    async def launch(self, kernel_id: int, jupyter_id: str, runtime: str, env: Any = None, *, pooled: bool) -> Launched:
        assert pooled
        future: asyncio.Future[Launched] = asyncio.get_running_loop().create_future()
        self.launches.append(future)
        return await future

    async def teardown(self, kernel_id: int, client: Any) -> None:
        client.close()
        self.disposed.append(f"c{kernel_id}")


class FakePool(KernelPool):
    def __init__(self, size: int, parallel: int = 2) -> None:
        self.ids = iter(range(1, 1000))
        self.control = ControlledLauncher()
        super().__init__(self.control, lambda: next(self.ids), size=size, parallel=parallel, runtime="runc")  # type: ignore[arg-type]

    @property
    def launches(self) -> list[asyncio.Future[Launched]]:
        return self.control.launches

    @property
    def disposed(self) -> list[str]:
        return self.control.disposed

    def finish(self, index: int) -> Launched:
        self.control.count += 1
        n = self.control.count
        launched = Launched(SandboxHandle(n, f"c{n}", f"n{n}", {}), FakeClient())  # type: ignore[arg-type]
        self.launches[index].set_result(launched)
        return launched


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
        claimed = await pool.claim("runc")
        assert claimed is not None and claimed.launched is first
        await settle()
        assert len(pool.launches) == 4  # refilling
        assert pool.status()["hits"] == 1 and pool.status()["misses"] == 0
        await pool.close()
        assert pool.disposed == ["c2", "c3"]

    run(scenario())


def test_empty_pool_is_a_miss_not_an_error_and_size_zero_is_off() -> None:
    async def scenario() -> None:
        pool = FakePool(size=1)
        assert await pool.claim("runc") is None and pool.status()["misses"] == 1
        off = FakePool(size=0)
        off.start()
        await settle()
        assert await off.claim("runc") is None and off.launches == [] and off.status()["misses"] == 0
        await pool.close()

    run(scenario())


def test_a_claimed_kernel_is_never_handed_out_again() -> None:
    async def scenario() -> None:
        pool = FakePool(size=2)
        pool.start()
        await settle()
        pool.finish(0), pool.finish(1)
        await settle()
        claimed = [await pool.claim("runc"), await pool.claim("runc")]
        assert await pool.claim("runc") is None
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
        assert pool.discard("unknown") is False  # not the pool's: ignored
        await pool.close()

    run(scenario())


def test_a_pooled_kernel_reached_at_a_new_address_is_not_handed_out_on_its_old_connection() -> None:
    async def scenario() -> None:
        pool = FakePool(size=1)
        pool.start()
        await settle()
        pool.finish(0)  # its ReadyKernel has kernel id 1, which is its sandbox id
        await settle()
        ready = pool._ready[0]
        pool.moved(999)  # not the pool's: ignored
        assert pool.status()["ready"] == 1
        pool.moved(ready.kernel_id)
        await settle()
        assert await pool.claim("runc") is None and ready.launched.client.closed  # type: ignore[attr-defined]
        assert len(pool.launches) == 2  # replaced
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
