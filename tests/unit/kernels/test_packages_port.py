"""The core's packages port (``KernelPackages``) and per-kernel images, on fake adapters: a cell is offered to the
port before it is sent (a refusal is its error, nothing is sent); every replacement and re-attach reinstalls before
the kernel is handed back; a kernel gone for good is forgotten; an image is allowed, kept and stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.errors import ImageNotAllowed, KernelDead
from gateway.kernels.kernel import Kernel, KernelEvent, KernelState
from gateway.kernels.service import KernelService
from gateway.notebook.outputs import Output
from gateway.packages.errors import PackageNotAllowed
from gateway.settings import Settings
from tests.fakes import FakeConnector, FakeSandbox, FakeStore

REFUSAL: Output = {"output_type": "error", "ename": "PackageNotAllowed", "evalue": "denied", "traceback": []}


class RecordingPackages:
    """A ``KernelPackages`` that records every call; refuses code containing ``refuse``."""

    def __init__(self, refuse: str = "%pip install denied") -> None:
        self.refuse = refuse
        self.calls: list[tuple[Any, ...]] = []
        self.events_at_reinstall: list[list[KernelEvent]] = []
        self.events: list[KernelEvent] = []

    async def start_up(self, kernel_ids: set[int]) -> None:
        self.calls.append(("start_up", frozenset(kernel_ids)))

    async def before_run(self, kernel: Kernel, code: str) -> Output | None:
        self.calls.append(("before_run", kernel.id, code))
        return dict(REFUSAL) if self.refuse in code else None  # type: ignore[return-value]

    async def after_launch(self, kernel: Kernel) -> None:
        assert kernel.client is not None and kernel.state is KernelState.IDLE  # connected, not yet announced
        self.calls.append(("after_launch", kernel.id, kernel.container_id))
        self.events_at_reinstall.append(list(self.events))

    async def install(self, kernel: Kernel, requirements: list[str]) -> dict[str, Any]:
        assert kernel.lock.locked()
        self.calls.append(("install", kernel.id, tuple(requirements)))
        return {"installed": [], "output": ""}

    def installed(self, kernel_id: int) -> dict[str, Any]:
        return {"requirements": [], "wheels": [], "bytes": 0}

    async def forget(self, kernel_id: int, sandbox_id: int | None = None) -> None:
        self.calls.append(("forget", kernel_id))

    def close(self) -> None:
        self.calls.append(("close",))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]


def settings(**values: Any) -> Settings:
    defaults = {"interrupt_grace": 0.2, "output_flush_interval": 0.05, "instance": "unit", "pool_size": 0}
    return Settings(**{**defaults, **values})


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


async def started(
    packages: RecordingPackages, sandbox: FakeSandbox | None = None, store: FakeStore | None = None, **values: Any
) -> KernelService:
    sandbox = sandbox or FakeSandbox()
    service = KernelService(
        settings(**values), sandbox, FakeConnector(sandbox), store or FakeStore(), packages=packages
    )
    await service.start_up()
    return service


async def cell(service: KernelService, kernel: Kernel, number: int, code: str, timeout: float | None = None):
    await service.add_cell(kernel, number, code)
    return await service.run_cell(kernel, number, timeout)


def test_a_refused_cell_is_its_error_and_is_not_sent() -> None:
    async def scenario() -> None:
        packages = RecordingPackages()
        service = await started(packages)
        kernel = await service.start()
        refused = await cell(service, kernel, 1, "x = 1\n%pip install denied")
        assert refused.status == "error" and refused.outputs == [REFUSAL] and refused.execution_count is None
        assert kernel.notebook.get(1).status == "error" and kernel.state is KernelState.IDLE
        after = await cell(service, kernel, 2, "print('x' in globals())")
        assert after.outputs[0]["text"] == "False\n"  # the refused cell never reached the kernel
        assert packages.named("before_run") == [
            ("before_run", kernel.id, "x = 1\n%pip install denied"),
            ("before_run", kernel.id, "print('x' in globals())"),
        ]
        await service.shut_down()
        assert packages.calls[-1] == ("close",)

    run(scenario)


def test_every_new_container_reinstalls_before_the_kernel_is_announced() -> None:
    async def scenario() -> None:
        packages = RecordingPackages()
        service = await started(packages)
        kernel = await service.start()
        kernel.listeners.add(lambda _, event: packages.events.append(event))
        assert packages.named("after_launch") == []  # a new kernel has nothing to reinstall
        await service.restart(kernel)
        timed_out = await cell(service, kernel, 1, "# forever", timeout=0.05)  # ignores interrupts: replaced
        assert not timed_out.state_kept
        await cell(service, kernel, 2, "1")  # waits for the replacement
        reinstalls = packages.named("after_launch")
        assert len(reinstalls) == 2 and reinstalls[-1] == ("after_launch", kernel.id, kernel.container_id)
        assert packages.events_at_reinstall == [
            [KernelEvent.STOPPED],
            [KernelEvent.STOPPED, KernelEvent.STARTED, KernelEvent.DIED],
        ]  # each time before STARTED: nobody uses the kernel before its packages are back
        await service.shutdown(kernel.id)
        assert packages.named("forget") == [("forget", kernel.id)]
        await service.shut_down()

    run(scenario)


def test_a_restarted_gateway_loads_the_packages_before_reattaching_and_reinstalls() -> None:
    async def scenario() -> None:
        sandbox, store = FakeSandbox(), FakeStore()
        first = await started(RecordingPackages(), sandbox, store, on_stop="keep")
        kernel = await first.start()
        await first.shut_down()
        packages = RecordingPackages()
        second = await started(packages, sandbox, store, on_stop="keep")
        assert packages.calls[:2] == [
            ("start_up", frozenset({kernel.id})),
            ("after_launch", kernel.id, kernel.container_id),
        ]
        assert second.get(kernel.id).state is KernelState.IDLE
        await second.shut_down()

    run(scenario)


def test_install_waits_for_the_kernel_and_a_dead_kernel_is_refused() -> None:
    async def scenario() -> None:
        packages = RecordingPackages()
        service = await started(packages)
        kernel = await service.start()
        assert await service.install_packages(kernel, ["tabulate"]) == {"installed": [], "output": ""}
        assert packages.named("install") == [("install", kernel.id, ("tabulate",))]
        await service.lifecycle.mark_dead(kernel, "test")
        with pytest.raises(KernelDead):
            await service.install_packages(kernel, ["tabulate"])
        await service.shut_down()

    run(scenario)


def test_without_a_packages_adapter_nothing_is_fetched_and_install_is_refused() -> None:
    async def scenario() -> None:
        sandbox = FakeSandbox()
        service = KernelService(settings(), sandbox, FakeConnector(sandbox), FakeStore())
        await service.start_up()
        kernel = await service.start()
        assert (await cell(service, kernel, 1, "print(1)")).status == "ok"
        with pytest.raises(PackageNotAllowed):
            await service.install_packages(kernel, ["tabulate"])
        await service.shut_down()

    run(scenario)


def test_an_image_must_be_allowed_is_kept_across_restarts_and_stored() -> None:
    async def scenario() -> None:
        sandbox, store = FakeSandbox(), FakeStore()
        service = await started(
            RecordingPackages(), sandbox, store, allowed_images="team/science:1", sandbox_image="base:1", pool_size=1
        )
        with pytest.raises(ImageNotAllowed, match="JUPYCELL_ALLOWED_IMAGES"):
            await service.start(image="alpine:latest")
        default = await service.start(image="base:1")  # the deployment's own image: the default, from the pool
        assert default.image is None
        kernel = await service.start(image="team/science:1")
        container = sandbox.by_kernel(kernel.id)
        assert kernel.image == "team/science:1" and container is not None and container.image == "team/science:1"
        assert not container.pooled and store.kernels[kernel.id].image == "team/science:1"
        await service.restart(kernel)
        restarted = sandbox.by_kernel(kernel.id)
        assert restarted is not None and restarted.image == "team/science:1"
        await service.shut_down()

    run(scenario)
