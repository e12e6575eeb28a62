"""``KernelMoves`` on fake adapters: a kernel whose sandbox is reached at a new address (a node's agent back
elsewhere) is reconnected with its memory; a run in flight on the old connection says so; a kernel that does not
answer at its new address goes through the death policy."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.kernels.kernel import KernelState
from gateway.kernels.moves import MOVED
from gateway.kernels.ports import ConnectionInfo, MoveCallback, MovingBackend, SandboxHandle
from gateway.kernels.service import KernelService
from gateway.settings import Settings
from tests.fakes import FakeConnection, FakeConnector, FakeSandbox, FakeStore


class MovingSandbox(FakeSandbox):
    """A fake backend whose kernels can move: ``move`` changes the address ``restore`` gives and reports it."""

    def __init__(self) -> None:
        super().__init__()
        self.address = 1
        self._on_moved: MoveCallback = lambda kernel_id: None

    def restore(self, kernel_id: int, state: dict[str, Any], key: str) -> SandboxHandle:
        handle = super().restore(kernel_id, state, key)
        if self.address == 1:  # not moved yet: where it was started
            return handle
        info: ConnectionInfo = {**handle.connection_info, "hb_port": self.address}
        return SandboxHandle(kernel_id, handle.container_id, handle.name, info)

    def watch_moves(self, on_moved: MoveCallback) -> None:
        self._on_moved = on_moved

    def move(self, kernel_id: int) -> None:
        self.address += 1
        self._on_moved(kernel_id)


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def started() -> tuple[KernelService, MovingSandbox, FakeConnector]:
    sandbox = MovingSandbox()
    connector = FakeConnector(sandbox)
    settings = Settings(interrupt_grace=0.2, output_flush_interval=0.05, instance="unit", pool_size=0)
    service = KernelService(settings, sandbox, connector, FakeStore())
    await service.start_up()
    return service, sandbox, connector


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_the_fake_is_a_moving_backend_and_the_plain_one_is_not() -> None:
    assert isinstance(MovingSandbox(), MovingBackend)
    assert not isinstance(FakeSandbox(), MovingBackend)


def test_a_moved_kernel_keeps_its_memory_and_a_run_in_flight_says_the_connection_moved() -> None:
    async def scenario() -> None:
        service, sandbox, connector = await started()
        kernel = await service.start(owner=None)
        await service.add_cell(kernel, 1, "x = 41")
        assert (await service.run_cell(kernel, 1)).status == "ok"
        old = kernel.client
        await service.add_cell(kernel, 2, "pass  # forever")
        in_flight = asyncio.create_task(service.run_cell(kernel, 2))
        await until(lambda: kernel.state is KernelState.BUSY)
        sandbox.move(kernel.id)
        cut = await in_flight
        assert cut.status == "error" and cut.state_kept, cut
        assert cut.outputs[-1]["ename"] == "ConnectionMoved" and MOVED in cut.outputs[-1]["evalue"]
        await service.add_cell(kernel, 3, "print(x + 1)")
        after = await service.run_cell(kernel, 3)
        assert after.status == "ok" and after.outputs[0]["text"] == "42\n"  # same container, same memory
        assert kernel.client is not old and kernel.client is connector.connections[-1]
        assert isinstance(old, FakeConnection) and old.closed
        assert kernel.connection_info is not None and kernel.connection_info.get("hb_port") == sandbox.address
        assert sandbox.started == 1 and kernel.last_death is None and kernel.state is KernelState.IDLE
        await service.shut_down()

    run(scenario)


def test_a_moved_kernel_that_does_not_answer_there_goes_through_the_death_policy() -> None:
    async def scenario() -> None:
        service, sandbox, connector = await started()
        kernel = await service.start(owner=None)
        connector.unready = 1  # the connection to the new address never answers
        sandbox.move(kernel.id)
        await until(lambda: sandbox.started == 2 and kernel.state is KernelState.IDLE)
        assert kernel.last_death is not None and "after its connection moved" in kernel.last_death
        await service.shut_down()

    run(scenario)


def test_a_move_that_changes_nothing_or_names_an_unknown_kernel_is_ignored() -> None:
    async def scenario() -> None:
        service, sandbox, connector = await started()
        kernel = await service.start(owner=None)
        client = kernel.client
        service.moves.kernel_moved(kernel.id)  # restore gives the same address: nothing to do
        service.moves.kernel_moved(999)
        assert kernel.client is client and len(connector.connections) == 1
        await service.shut_down()

    run(scenario)
