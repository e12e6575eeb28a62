"""The core (``KernelService``) on fake adapters: starts, limits, runs, deadlines, deaths, recovery, edits, pool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.errors import FileTransferFailed, KernelBusy, KernelDead, StoreUnavailable, TooManyKernels
from gateway.kernels.kernel import InvalidTransition, Kernel, KernelEvent, KernelState
from gateway.kernels.ports import ContainerExit
from gateway.kernels.service import KernelService
from gateway.settings import Settings
from tests.fakes import FakeConnector, FakeSandbox, FakeStore, fake_service


def settings(**values: Any) -> Settings:
    defaults = {"interrupt_grace": 0.2, "output_flush_interval": 0.05, "instance": "unit", "pool_size": 0}
    return Settings(**{**defaults, **values})


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def started(values: dict[str, Any] | None = None, **sandbox: Any) -> KernelService:
    service = fake_service(settings(**(values or {})), **sandbox)
    await service.start_up()
    return service


def backend(service: KernelService) -> FakeSandbox:
    assert isinstance(service.backend, FakeSandbox)
    return service.backend


def store(service: KernelService) -> FakeStore:
    assert isinstance(service.store, FakeStore)
    return service.store


async def cell(service: KernelService, kernel: Kernel, number: int, code: str, timeout: float | None = None):
    await service.add_cell(kernel, number, code)
    return await service.run_cell(kernel, number, timeout)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# --- start and limits -----------------------------------------------------------------------------------------


def test_start_runs_and_keeps_state_between_cells() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start(owner="ann")
        assert kernel.state is KernelState.IDLE and kernel.owner == "ann" and backend(service).containers
        assert (await cell(service, kernel, 1, "x = 41")).status == "ok"
        result = await cell(service, kernel, 2, "print(x + 1)")
        assert result.status == "ok" and result.outputs[0]["text"] == "42\n" and result.execution_count == 2
        assert store(service).kernels[kernel.id].owner == "ann"
        failed = await cell(service, kernel, 3, "1/0")
        assert failed.status == "error" and failed.outputs[-1]["ename"] == "ZeroDivisionError"
        await service.shut_down()

    run(scenario)


def test_dead_kernels_do_not_count_against_the_limits_but_live_and_starting_ones_do() -> None:
    async def scenario() -> None:
        service = await started({"max_kernels": 2, "dead_kernel_ttl": 0}, start_delay=0.05)
        first = await service.start(owner="ann")
        await service.lifecycle.mark_dead(first, "test")
        second = await service.start(owner="ann")
        # one more may start (the dead one does not count); two concurrent starts: one admitted, one refused
        results = await asyncio.gather(service.start(owner="ann"), service.start(owner="bob"), return_exceptions=True)
        assert sum(isinstance(r, Kernel) for r in results) == 1
        assert sum(isinstance(r, TooManyKernels) for r in results) == 1
        assert second.alive and service.registry.live() == 2 and len(service.registry) == 3
        await service.shut_down()

    run(scenario)


def test_per_key_limit_counts_pending_starts() -> None:
    async def scenario() -> None:
        service = await started({"max_kernels_per_key": 2}, start_delay=0.05)
        results = await asyncio.gather(*(service.start(owner="ann") for _ in range(4)), return_exceptions=True)
        assert sum(isinstance(r, Kernel) for r in results) == 2
        assert all("key 'ann' may run at most 2" in str(r) for r in results if isinstance(r, TooManyKernels))
        assert isinstance(await service.start(owner="bob"), Kernel)
        await service.shut_down()

    run(scenario)


def test_a_failed_start_leaves_nothing_behind_and_frees_its_slot() -> None:
    async def scenario() -> None:
        service = await started({"max_kernels": 1}, fail_starts=1)
        with pytest.raises(Exception, match="refused"):
            await service.start()
        assert len(service.registry) == 0 and backend(service).containers == {}
        assert isinstance(await service.start(), Kernel)  # the slot was released
        await service.shut_down()

    run(scenario)


def test_a_kernel_that_never_answers_is_removed_with_its_log() -> None:
    async def scenario() -> None:
        service = await started({"kernel_start_timeout": 0.1})
        assert isinstance(service.lifecycle.launcher.connector, FakeConnector)
        service.lifecycle.launcher.connector.unready = 1
        with pytest.raises(Exception, match="(?s)did not become ready.*fake log"):
            await service.start()
        assert backend(service).containers == {} and len(service.registry) == 0
        await service.shut_down()

    run(scenario)


# --- warm pool --------------------------------------------------------------------------------------------------


def test_pool_claims_are_unique_and_a_miss_starts_cold() -> None:
    async def scenario() -> None:
        service = await started({"pool_size": 3, "pool_parallel_starts": 3})
        await until(lambda: service.pool_status()["ready"] == 3)
        kernels = await asyncio.gather(*(service.start() for _ in range(5)))
        assert len({k.id for k in kernels}) == 5 and len({k.container_id for k in kernels}) == 5
        status = service.pool_status()
        assert status["hits"] == 3 and status["misses"] == 2 and status["profile"]["image"] == "fake"
        pooled = [c for c in backend(service).containers.values() if c.pooled]
        assert {c.kernel_id for c in pooled} >= {k.id for k in kernels[:3]}
        for kernel in kernels[:3]:  # a claimed container carries the kernel's own Jupyter id
            assert backend(service).by_kernel(kernel.id).jupyter_id == kernel.uuid  # type: ignore[union-attr]
        await service.shut_down()

    run(scenario)


def test_a_pooled_container_that_dies_unclaimed_is_replaced() -> None:
    async def scenario() -> None:
        service = await started({"pool_size": 1})
        await until(lambda: service.pool_status()["ready"] == 1)
        (pooled,) = [c for c in backend(service).containers.values() if c.pooled]
        backend(service).die(pooled.kernel_id)
        await until(
            lambda: service.pool_status()["ready"] == 1 and pooled.container_id not in backend(service).containers
        )
        kernel = await service.start()
        assert kernel.id != pooled.kernel_id
        await service.shut_down()

    run(scenario)


# --- deadlines --------------------------------------------------------------------------------------------------


def test_deadline_interrupt_keeps_state() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await cell(service, kernel, 1, "x = 5")
        result = await cell(service, kernel, 2, "# hang", timeout=0.05)
        assert result.status == "timeout" and result.state_kept
        assert (await cell(service, kernel, 3, "print(x)")).outputs[0]["text"] == "5\n"
        await service.shut_down()

    run(scenario)


def test_deadline_escalates_to_sigint_through_the_engine_and_keeps_state() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await cell(service, kernel, 1, "x = 5")
        result = await cell(service, kernel, 2, "# hang-hard: ignores interrupt requests", timeout=0.05)
        assert result.status == "timeout" and result.state_kept, result.detail
        container = backend(service).by_kernel(kernel.id)
        assert container is not None and container.signals == ["SIGINT"]
        assert (await cell(service, kernel, 3, "print(x)")).outputs[0]["text"] == "5\n"
        await service.shut_down()

    run(scenario)


def test_a_kernel_ignoring_every_interrupt_is_replaced_and_the_next_run_waits_for_it() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        old = kernel.container_id
        events: list[KernelEvent] = []
        kernel.listeners.add(lambda _, event: events.append(event))
        await cell(service, kernel, 1, "x = 5")
        result = await cell(service, kernel, 2, "# forever", timeout=0.05)
        assert result.status == "timeout" and not result.state_kept and "replaced" in (result.detail or "")
        assert kernel.notebook.get(1).status is None  # memory gone: the cell counts as never run
        after = await cell(service, kernel, 3, "print('x' in globals())")
        assert after.outputs[0]["text"] == "False\n" and kernel.container_id != old
        assert events == [KernelEvent.DIED, KernelEvent.STARTED]  # websockets are told it is restarting
        await service.shut_down()

    run(scenario)


# --- deaths: one policy ---------------------------------------------------------------------------------------


def test_death_during_a_run_is_died_with_the_cause_and_the_kernel_comes_back_fresh() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await cell(service, kernel, 1, "x = 1")
        await service.add_cell(kernel, 2, "# hang")
        running = asyncio.create_task(service.run_cell(kernel, 2))
        await until(lambda: kernel.state is KernelState.BUSY)
        backend(service).die(kernel.id, oom=True)
        result = await running
        assert result.status == "died" and not result.state_kept
        assert "out of memory (limit 1024 MiB)" in (result.detail or "")
        assert "while running cell 2" in (kernel.last_death or "")
        assert store(service).kernels[kernel.id].last_death == kernel.last_death
        assert (await cell(service, kernel, 3, "print('x' in globals())")).outputs[0]["text"] == "False\n"
        assert kernel.state is KernelState.IDLE
        await service.shut_down()

    run(scenario)


def test_death_while_idle_is_recovered_in_the_background() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        old = kernel.container_id
        backend(service).die(kernel.id, exit_code=1)
        await until(lambda: kernel.state is KernelState.IDLE and kernel.container_id not in ("", old))
        assert kernel.last_death == "exited with code 1"
        assert (await cell(service, kernel, 1, "print(1)")).status == "ok"
        await service.shut_down()

    run(scenario)


def test_death_during_a_file_transfer_goes_through_the_same_policy() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        old = kernel.container_id
        assert kernel.client is not None
        kernel.client.mark_dead("its container died")  # as the engine event would, before the transfer
        backend(service).die(kernel.id, event=False)
        with pytest.raises(FileTransferFailed, match="during a file transfer"):
            await service.download(kernel, "a.txt")
        await until(lambda: kernel.state is KernelState.IDLE and kernel.container_id not in ("", old))
        assert "during a file transfer" in (kernel.last_death or "")
        await service.shut_down()

    run(scenario)


def test_a_kernel_that_cannot_be_replaced_is_dead_and_says_why() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        backend(service).fail_starts = 1
        backend(service).die(kernel.id)
        await until(lambda: kernel.state is KernelState.DEAD and "could not be restarted" in (kernel.last_death or ""))
        with pytest.raises(KernelDead, match="could not be restarted"):
            await cell(service, kernel, 1, "1")
        await service.restart(kernel)  # the engine works again
        assert kernel.state is KernelState.IDLE
        await service.shut_down()

    run(scenario)


def test_shutdown_under_a_run_ends_it_as_died() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await service.add_cell(kernel, 1, "# hang")
        running = asyncio.create_task(service.run_cell(kernel, 1))
        await until(lambda: kernel.state is KernelState.BUSY)
        await service.shutdown(kernel.id, "test")
        result = await running
        assert result.status == "died" and "shut down because test" in (result.detail or "")
        assert kernel.id not in store(service).kernels and backend(service).by_kernel(kernel.id) is None
        with pytest.raises(Exception, match="shut down because test"):
            service.get(kernel.id)
        await service.shut_down()

    run(scenario)


# --- restarts and recovery after a gateway restart -------------------------------------------------------------


def test_restart_is_a_fresh_container_without_a_restarting_status() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await cell(service, kernel, 1, "x = 1")
        events: list[KernelEvent] = []
        kernel.listeners.add(lambda _, event: events.append(event))
        await service.restart(kernel)
        assert events == [KernelEvent.STOPPED, KernelEvent.STARTED]
        assert kernel.notebook.get(1).status is None and kernel.notebook.get(1).code == "x = 1"
        await service.shut_down()

    run(scenario)


def test_a_restarted_gateway_reattaches_with_memory_and_marks_lost_kernels_dead() -> None:
    async def scenario() -> None:
        first = await started({"on_stop": "keep"})
        alive = await first.start(owner="ann")
        lost = await first.start()
        exited = await first.start()
        await cell(first, alive, 1, "x = 7")
        await first.shut_down()  # on_stop=keep: containers stay
        sandbox, db = backend(first), store(first)
        await sandbox.remove(lost.id)
        exited_container = sandbox.by_kernel(exited.id)
        assert exited_container is not None
        exited_container.exit = ContainerExit(137, True)
        orphan = await sandbox.start(99, "u", "runc", {})
        second = KernelService(settings(on_stop="keep"), sandbox, FakeConnector(sandbox), db)
        await second.start_up()
        again = second.get(alive.id)
        assert again.state is KernelState.IDLE and again.owner == "ann"
        assert (await second.run_cell(again, 1)).status == "ok"
        result = await cell(second, again, 2, "print(x)")
        assert result.outputs[0]["text"] == "7\n"  # memory kept
        assert second.get(lost.id).state is KernelState.DEAD
        assert second.get(lost.id).last_death == "its container was removed while the gateway was down"
        assert "out of memory" in (second.get(exited.id).last_death or "")
        assert orphan.container_id not in sandbox.containers
        await second.shut_down()

    run(scenario)


# --- edits stay consistent with the store ---------------------------------------------------------------------


def test_a_failed_store_write_leaves_the_notebook_as_it_was() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await cell(service, kernel, 1, "x = 1")
        await cell(service, kernel, 2, "y = x + 1")
        store(service).fail_next = True
        with pytest.raises(StoreUnavailable):
            await service.edit_cell(kernel, 1, "x = 2")
        assert kernel.notebook.get(1).code == "x = 1" and not kernel.notebook.get(2).stale
        store(service).fail_next = True
        with pytest.raises(StoreUnavailable):
            await service.delete_cell(kernel, 1)
        restored = kernel.notebook.get(1)
        assert restored.code == "x = 1" and restored.status == "ok" and not kernel.notebook.get(2).stale
        store(service).fail_next = True
        with pytest.raises(StoreUnavailable):
            await service.add_cell(kernel, 3, "z = 1")
        assert 3 not in kernel.notebook.cells
        await service.shut_down()

    run(scenario)


# --- the kernel's queue: runs, websocket executions, culling --------------------------------------------------


def test_a_run_waits_for_websocket_executions_and_wait_false_is_refused_meanwhile() -> None:
    async def scenario() -> None:
        service = await started()
        kernel = await service.start()
        await service.add_cell(kernel, 1, "x = 1")
        kernel.begin_external("ws-1")
        with pytest.raises(KernelBusy):
            await service.run_cell(kernel, 1, wait=False)
        running = asyncio.create_task(service.run_cell(kernel, 1))
        await asyncio.sleep(0.05)
        assert not running.done()
        kernel.end_external("ws-1")
        assert (await running).status == "ok"
        await service.shut_down()

    run(scenario)


def test_culling_skips_busy_kernels_and_dead_ones_expire() -> None:
    async def scenario() -> None:
        service = await started({"idle_timeout": 0.2, "cull_interval": 0.05, "dead_kernel_ttl": 0.2})
        busy, idle, dead = await service.start(), await service.start(), await service.start()
        busy.begin_external("ws")
        await service.lifecycle.mark_dead(dead, "test")
        await until(lambda: idle.id not in [k.id for k in service.registry] and dead not in service.registry)
        assert busy in service.registry
        with pytest.raises(Exception, match="idle for more than"):
            service.get(idle.id)
        with pytest.raises(Exception, match="dead for more than"):
            service.get(dead.id)
        assert dead.id not in store(service).kernels
        await service.shut_down()

    run(scenario)


def test_state_transitions_are_checked() -> None:
    kernel = Kernel(id=1, state=KernelState.DEAD)
    with pytest.raises(InvalidTransition):
        kernel.set_state(KernelState.BUSY)
    kernel.set_state(KernelState.STARTING)
    kernel.set_state(KernelState.IDLE)
    kernel.observe_execution_state("busy")
    assert kernel.state is KernelState.BUSY
    kernel.set_state(KernelState.DEAD)
    kernel.observe_execution_state("idle")  # a websocket's status does not revive a dead kernel
    assert kernel.state is KernelState.DEAD
