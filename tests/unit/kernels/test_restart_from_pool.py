"""Restarts, replacements and recoveries take a warm-pool container for the existing kernel (fake adapters)."""

from __future__ import annotations

from gateway.kernels.kernel import KernelEvent, KernelState
from gateway.kernels.service import KernelService
from tests.fakes import FakeConnector
from tests.unit.kernels.test_service import backend, cell, run, settings, started, store, until


def pooled_ids(service: KernelService) -> set[int]:
    return {c.kernel_id for c in backend(service).containers.values() if c.pooled}


def test_restart_takes_a_pool_container_keeps_id_and_cells_and_forgets_memory() -> None:
    async def scenario() -> None:
        service = await started({"pool_size": 2, "pool_parallel_starts": 2})
        await until(lambda: service.pool_status()["ready"] == 2)
        kernel = await service.start()  # from the pool: its sandbox id is its own id
        assert kernel.sandbox_id == kernel.id
        await cell(service, kernel, 1, "x = 1")
        await until(lambda: service.pool_status()["ready"] == 2)
        old = kernel.container_id
        waiting = pooled_ids(service) - {kernel.id}
        events: list[KernelEvent] = []
        kernel.listeners.add(lambda _, event: events.append(event))
        await service.restart(kernel)
        assert events == [KernelEvent.STOPPED, KernelEvent.STARTED]
        assert service.get(kernel.id) is kernel and kernel.state is KernelState.IDLE
        assert kernel.sandbox_id in waiting and kernel.sandbox_id != kernel.id  # a container started for the pool
        assert service.pool_status()["hits"] == 2
        await until(lambda: old not in backend(service).containers)  # the old one goes in the background
        assert kernel.notebook.get(1).code == "x = 1" and kernel.notebook.get(1).status is None
        result = await cell(service, kernel, 2, "print('x' in dir())")
        assert result.outputs[0]["text"] == "False\n"  # fresh memory
        (record,) = await store(service).load_kernels("unit")
        assert record.container_id == kernel.container_id and record.sandbox_id == kernel.sandbox_id
        await service.shut_down()

    run(scenario)


def test_backend_calls_after_a_pool_restart_go_to_the_pool_container() -> None:
    async def scenario() -> None:
        service = await started({"pool_size": 1})
        kernel = await service.start()
        await until(lambda: service.pool_status()["ready"] == 1)
        await service.restart(kernel)
        await until(lambda: service.pool_status()["ready"] == 1)
        adopted = kernel.container_id
        backend(service).die(kernel.sandbox_id, oom=True)  # the engine reports it under its sandbox id
        await until(lambda: kernel.state is KernelState.IDLE and kernel.container_id not in ("", adopted))
        assert "out of memory" in (kernel.last_death or "")  # the cause was asked for the right container
        assert service.get(kernel.id) is kernel
        await service.shut_down()

    run(scenario)


def test_restart_with_an_empty_pool_after_a_pool_restart_starts_cold_for_the_kernel_id() -> None:
    async def scenario() -> None:
        service = await started({"pool_size": 1})
        kernel = await service.start()
        await until(lambda: service.pool_status()["ready"] == 1)
        await service.restart(kernel)  # takes the pool's only container
        await service.restart(kernel)  # the pool is still refilling, or not: both paths must work
        await service.restart(kernel)
        assert kernel.state is KernelState.IDLE
        assert (await cell(service, kernel, 1, "1+1")).status == "ok"
        await until(lambda: len([c for c in backend(service).containers.values() if not c.pooled or
                                 c.kernel_id == kernel.sandbox_id]) == 1)  # fmt: skip
        await service.shut_down()

    run(scenario)


def test_a_restarted_gateway_finds_the_pool_container_of_a_restarted_kernel() -> None:
    async def scenario() -> None:
        first = await started({"pool_size": 1, "on_stop": "keep"})
        kernel = await first.start()
        await until(lambda: first.pool_status()["ready"] == 1)
        await first.restart(kernel)
        sandbox_id, container_id = kernel.sandbox_id, kernel.container_id
        assert sandbox_id != kernel.id
        await cell(first, kernel, 1, "y = 5")
        await first.shut_down()
        sandbox, db = backend(first), store(first)
        second = KernelService(settings(on_stop="keep"), sandbox, FakeConnector(sandbox), db)
        await second.start_up()
        again = second.get(kernel.id)
        assert again.state is KernelState.IDLE and again.container_id == container_id
        assert again.sandbox_id == sandbox_id
        result = await cell(second, again, 2, "print(y)")
        assert result.outputs[0]["text"] == "5\n"  # re-attached: same memory
        sandbox.die(sandbox_id)
        await until(lambda: again.state is KernelState.IDLE and again.container_id not in ("", container_id))
        await second.shut_down()

    run(scenario)
