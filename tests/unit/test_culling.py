"""Which kernels idle culling and the maximum lifetime pick."""

from __future__ import annotations

import asyncio

from gateway.kernels.culling import due_for_culling
from gateway.kernels.kernel import Kernel


def kernel(kernel_id: int, created: float, last_activity: float, state: str = "idle") -> Kernel:
    return Kernel(id=kernel_id, created=created, last_activity=last_activity, state=state)


def test_idle_and_expired_kernels_are_picked_with_a_reason() -> None:
    fresh, idle, old = kernel(1, 990, 999), kernel(2, 900, 950), kernel(3, 0, 999)
    due = due_for_culling([fresh, idle, old], now=1000, idle_timeout=30, max_lifetime=500)
    assert [(k.id, reason) for k, reason in due] == [
        (2, "it was idle for more than 30 s"),
        (3, "it reached the maximum lifetime of 500 s"),
    ]


def test_zero_turns_each_limit_off() -> None:
    kernels = [kernel(1, 0, 0)]
    assert due_for_culling(kernels, now=10**6, idle_timeout=0, max_lifetime=0) == []
    assert [k.id for k, _ in due_for_culling(kernels, now=10**6, idle_timeout=0, max_lifetime=10)] == [1]


def test_a_kernel_running_a_cell_is_not_idle() -> None:
    async def check() -> None:
        busy = kernel(1, 0, 0)
        async with busy.lock:
            assert due_for_culling([busy], now=1000, idle_timeout=10, max_lifetime=0) == []
        assert len(due_for_culling([busy], now=1000, idle_timeout=10, max_lifetime=0)) == 1

    asyncio.run(check())


def test_a_starting_kernel_is_left_alone() -> None:
    assert due_for_culling([kernel(1, 0, 0, "starting")], now=1000, idle_timeout=10, max_lifetime=10) == []
