"""``recovery.plan``: what a restarted gateway does with each stored kernel and each container it finds (pure)."""

from __future__ import annotations

import pytest

from gateway.kernels.kernel import KernelState
from gateway.kernels.ports import ContainerExit, KernelRecord, OwnContainer
from gateway.kernels.recovery import kernel_from, plan


def record(kernel_id: int, container_id: str = "", state: str = "idle") -> KernelRecord:
    return KernelRecord(
        id=kernel_id, uuid=f"u{kernel_id}", instance="i", owner=None, runtime="runc", env={},
        sandbox={"container_id": container_id, "name": f"n{kernel_id}", "connection": {}}, hmac_key="k",
        limits={}, state=state, last_death=None, created_at=0.0, last_activity_at=0.0,
    )  # fmt: skip


def container(container_id: str, kernel_id: int | None, exit: ContainerExit | None = None) -> OwnContainer:
    return OwnContainer(f"name-{container_id}", container_id, kernel_id, exit)


def test_a_running_container_is_reattached_and_interrupted_if_a_run_was_in_flight() -> None:
    result = plan([record(1, "c1"), record(2, "c2")], [container("c1", 1), container("c2", 2)], {2}, 512)
    assert [(r.id, interrupt) for r, interrupt in result.attach] == [(1, False), (2, True)]
    assert result.dead == [] and result.remove == [] and result.live_ids == {1, 2}


def test_a_removed_container_makes_its_kernel_dead() -> None:
    result = plan([record(1, "c1")], [], set(), 512)
    assert [(r.id, cause) for r, cause in result.dead] == [(1, "its container was removed while the gateway was down")]
    assert result.attach == []


def test_a_kernel_on_a_node_not_listed_is_reattached_not_declared_removed() -> None:
    """Issue 11: its node was silent, or not found yet, when the containers were listed: re-attaching tells."""
    result = plan([record(1, "c1"), record(2, "c2")], [], set(), 512, unlisted={2})
    assert [(r.id, interrupt) for r, interrupt in result.attach] == [(2, True)]
    assert [r.id for r, _ in result.dead] == [1]


@pytest.mark.parametrize(
    ("exit", "cause"),
    [
        (ContainerExit(137, True), "out of memory (limit 512 MiB) while the gateway was down"),
        (ContainerExit(137, False), "killed by signal 9 (exit code 137) while the gateway was down"),
        (ContainerExit(1, False), "exited with code 1 while the gateway was down"),
    ],
)
def test_an_exited_container_is_removed_and_its_kernel_dead_with_the_cause(exit: ContainerExit, cause: str) -> None:
    result = plan([record(1, "c1")], [container("c1", 1, exit)], set(), 512)
    assert [(r.id, c) for r, c in result.dead] == [(1, cause)]
    assert result.remove == ["name-c1"]


def test_containers_nobody_knows_are_removed() -> None:
    result = plan([record(1, "c1")], [container("c1", 1), container("x", 9), container("y", None)], set(), 512)
    assert sorted(result.remove) == ["name-x", "name-y"]
    assert [r.id for r, _ in result.attach] == [1]


def test_a_kernel_already_dead_stays_dead_and_a_container_it_left_is_removed() -> None:
    result = plan([record(1, "", "dead"), record(2, "c2", "dead")], [container("c2", 2)], set(), 512)
    assert [r.id for r in result.stay_dead] == [1, 2]
    assert result.remove == ["name-c2"] and result.attach == [] and result.dead == []


def test_kernel_from_a_record_keeps_identity_and_starts_without_a_container() -> None:
    kernel = kernel_from(record(5, "c5"))
    assert kernel.id == 5 and kernel.uuid == "u5" and kernel.state is KernelState.STARTING and kernel.handle is None
    assert kernel_from(record(6, "", "dead")).state is KernelState.DEAD


def test_with_several_replicas_containers_the_deployment_knows_stay_and_socket_directories_are_left() -> None:
    # issue 11: 2 is another replica's pool kernel or start in progress; 3 and the unlabelled one nobody knows
    result = plan([record(1, "c1")], [container("c1", 1), container("c2", 2), container("c3", 3),
                                     container("cx", None)], set(), 512, deployment={1, 2})  # fmt: skip
    assert sorted(result.remove) == ["name-c3", "name-cx"]
    assert result.keep_unknown and not plan([], [], set(), 512).keep_unknown
