"""Start-up: make the store and the engine agree, so that a restarted gateway takes its kernels back.

``plan`` decides (pure: records, containers and interrupted runs in, a ``RecoveryPlan`` out); ``apply`` acts.

- A run still recorded as in flight was cut off by the gateway stopping: it becomes ``interrupted``, keeping the
  outputs written so far (the store does that before ``plan``).
- A kernel whose container still runs is re-attached: a new connection to the same sockets with the stored key,
  same kernel id, same memory (code that was running when the gateway stopped is interrupted first).
- A kernel whose container exited or is gone is marked dead with that cause; ``restart`` brings it back fresh,
  cells kept.
- A container of this instance that no record knows is removed, and so are sockets nobody uses (not while other
  gateway replicas of the instance are alive: those may be theirs, issue 11).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from gateway.kernels.kernel import Kernel, KernelState
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.ports import KernelRecord, OwnContainer
from gateway.notebook import Notebook

log = logging.getLogger(__name__)

INTERRUPTED_DETAIL = "the gateway stopped while this cell ran; outputs up to that moment are kept"


@dataclass
class RecoveryPlan:
    """What start-up does with each stored kernel and each container found."""

    attach: list[tuple[KernelRecord, bool]] = field(default_factory=list)  # (record, interrupt what runs first)
    dead: list[tuple[KernelRecord, str]] = field(default_factory=list)  # lost while the gateway was down: cause
    stay_dead: list[KernelRecord] = field(default_factory=list)  # already dead: kept with the recorded cause
    remove: list[str] = field(default_factory=list)  # container names: unknown to the store, or exited
    keep_unknown: bool = False  # issue 11: other replicas' containers and socket directories are not ours

    @property
    def live_ids(self) -> set[int]:
        return {record.id for record, _ in self.attach}


def plan(
    records: list[KernelRecord],
    containers: list[OwnContainer],
    interrupted: set[int],
    mem_limit_mb: int,
    *,
    deployment: set[int] | None = None,
    keep_unknown: bool = False,
    unlisted: Collection[int] = (),
) -> RecoveryPlan:
    """Decide, for every stored kernel of this instance and every container of it, what start-up does.

    Several replicas share the instance (issue 11): ``deployment`` is every kernel id the deployment knows of (stored
    kernels, pool kernels, pending starts), read after ``containers`` were listed: a container of one of them stays;
    ``keep_unknown``: other replicas are alive, so no container this one does not know is removed. Either way socket
    directories are left alone (the leader's janitor sweeps). ``unlisted``: kernels on nodes ``containers`` does not
    cover (silent, or not found yet): re-attached, which tells whether they answer or their node is lost."""
    result = RecoveryPlan(keep_unknown=keep_unknown or deployment is not None)
    by_id = {container.container_id: container for container in containers}
    known = {record.container_id for record in records if record.container_id}
    if not keep_unknown:
        others = deployment or set()
        result.remove += [c.name for c in containers if c.container_id not in known and c.kernel_id not in others]
    for record in records:
        container = by_id.get(record.container_id) if record.container_id else None
        if record.state == KernelState.DEAD:
            result.stay_dead.append(record)
            if container is not None:
                result.remove.append(container.name)
        elif container is None and record.id in unlisted:
            result.attach.append((record, True))
        elif container is None:
            result.dead.append((record, "its container was removed while the gateway was down"))
        elif container.exit is not None:
            result.remove.append(container.name)
            result.dead.append((record, f"{container.exit.describe(mem_limit_mb)} while the gateway was down"))
        else:
            result.attach.append((record, record.id in interrupted))
    return result


def kernel_from(record: KernelRecord) -> Kernel:
    """The kernel a record describes, without a container yet (``starting``, or ``dead`` as recorded)."""
    return Kernel(
        id=record.id,
        uuid=record.uuid,
        owner=record.owner,
        runtime=record.runtime,
        image=record.image,
        env=record.env,
        notebook=Notebook({cell.number: cell for cell in record.cells}, version=record.notebook_version),
        state=KernelState.DEAD if record.state == KernelState.DEAD else KernelState.STARTING,
        last_death=record.last_death,
        created=record.created_at,
        last_activity=record.last_activity_at,
    )


def as_stored(record: KernelRecord) -> Kernel:
    """The kernel as its record describes it, state included (a view for listings: no container, not served)."""
    kernel = kernel_from(record)
    with contextlib.suppress(ValueError):
        kernel.state = KernelState(record.state)
    return kernel


async def apply(recovery: RecoveryPlan, lifecycle: KernelLifecycle, reattach_timeout: float) -> None:
    """Carry out the plan: register every stored kernel, re-attach or mark dead, remove what nobody owns."""
    backend = lifecycle.launcher.backend
    await asyncio.gather(*(backend.remove_container(name) for name in recovery.remove))
    for record in recovery.stay_dead:
        lifecycle.registry.add(kernel_from(record))
    for record, cause in recovery.dead:
        kernel = kernel_from(record)
        lifecycle.registry.add(kernel)
        await lifecycle.mark_dead(kernel, cause)

    await asyncio.gather(
        *(take_back(lifecycle, record, interrupt=again, timeout=reattach_timeout) for record, again in recovery.attach)
    )
    if not recovery.keep_unknown:
        await backend.remove_leftovers({k.sandbox_id for k in lifecycle.registry if k.alive})
    alive = lifecycle.registry.live()
    log.info(
        "reconciled instance %r: %d kernels re-attached, %d dead, %d containers removed",
        lifecycle.instance,
        alive,
        len(lifecycle.registry) - alive,
        len(recovery.remove),
    )


async def take_back(lifecycle: KernelLifecycle, record: KernelRecord, *, interrupt: bool, timeout: float) -> Kernel:
    """Register the stored kernel and re-attach its running container (same sockets, key and memory; what runs is
    interrupted first if ``interrupt``); mark it dead with the reason if it does not answer."""
    kernel = kernel_from(record)
    lifecycle.registry.add(kernel)
    handle = lifecycle.launcher.backend.restore(record.sandbox_id, record.sandbox, record.hmac_key)
    async with kernel.lock:
        failure = await lifecycle.reattach(kernel, handle, interrupt=interrupt, timeout=timeout)
        if failure is not None:
            await lifecycle.mark_dead(kernel, failure)
    return kernel
