"""Start-up: make the store and the engine agree, so that a restarted gateway takes its kernels back.

- A run still recorded as in flight was cut off by the gateway stopping: it becomes ``interrupted``, keeping the
  outputs written so far.
- A kernel whose container still runs is re-attached: a new client on the same sockets with the stored key, same
  kernel id, same memory (code that was running when the gateway stopped is interrupted first).
- A kernel whose container exited or is gone is marked dead with that cause; ``restart`` brings it back fresh,
  cells kept.
- A container of this instance that no record knows is removed, and so is a socket directory nobody uses.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.kernels.client import KernelGone, KernelUnresponsive
from gateway.kernels.connection import host_view
from gateway.kernels.kernel import Kernel
from gateway.notebook import Notebook
from gateway.store import KernelRecord

if TYPE_CHECKING:
    from gateway.kernels.manager import KernelManager

log = logging.getLogger(__name__)

INTERRUPTED_DETAIL = "the gateway stopped while this cell ran; outputs up to that moment are kept"


async def reconcile(manager: KernelManager) -> None:
    """Bring back the kernels the store knows for this instance (see the module's docstring)."""
    settings, store, sandbox = manager.settings, manager.store, manager.sandbox
    interrupted = await store.interrupt_open_runs(settings.instance, INTERRUPTED_DETAIL)
    was_running = {run.kernel_id for run in interrupted}
    records = await store.load_kernels(settings.instance)
    containers = await sandbox.list_own()

    by_id = {container.container_id: container for container in containers}
    known = {record.container_id for record in records if record.container_id}
    orphans = [container for container in containers if container.container_id not in known]
    await asyncio.gather(*(sandbox.remove_container(container.name) for container in orphans))

    attach = []
    for record in records:
        kernel = _kernel_from(record, settings.instance_dir / str(record.id))
        manager.kernels[kernel.id] = kernel
        container = by_id.get(record.container_id) if record.container_id else None
        if record.state == "dead":
            continue  # stays dead with its recorded cause until restarted
        if container is None:
            await _mark_dead(manager, kernel, "its container was removed while the gateway was down")
        elif container.exit is not None:
            cause = container.exit.describe(settings.mem_limit_mb)
            await sandbox.remove_container(container.name)
            await _mark_dead(manager, kernel, f"{cause} while the gateway was down")
        else:
            attach.append(_reattach(manager, kernel, interrupt=kernel.id in was_running))
    await asyncio.gather(*attach)

    live = {str(k.id) for k in manager.kernels.values() if k.state != "dead"}
    await asyncio.to_thread(_remove_socket_dirs_except, settings.instance_dir, live)
    alive = sum(1 for k in manager.kernels.values() if k.state != "dead")
    log.info(
        "reconciled instance %r: %d kernels re-attached, %d dead, %d orphan containers removed, %d runs interrupted",
        settings.instance,
        alive,
        len(manager.kernels) - alive,
        len(orphans),
        len(interrupted),
    )


def _kernel_from(record: KernelRecord, socket_dir: Path) -> Kernel:
    return Kernel(
        id=record.id,
        socket_dir=socket_dir,
        uuid=record.uuid,
        owner=record.owner,
        runtime=record.runtime,
        notebook=Notebook({cell.number: cell for cell in record.cells}, version=record.notebook_version),  # issue 12
        container_id=record.container_id,
        connection_info=host_view(record.connection_info(), socket_dir),
        env=record.env,
        state=record.state,
        last_death=record.last_death,
        created=record.created_at,
        last_activity=record.last_activity_at,
    )


async def _reattach(manager: KernelManager, kernel: Kernel, *, interrupt: bool) -> None:
    """Connect to a running kernel's sockets with its stored key; dead (container removed) if it does not answer."""
    async with kernel.lock:
        client = manager.connect(kernel)
        try:
            if interrupt:
                await client.interrupt()
            await client.wait_ready(manager.settings.reattach_timeout)
        except (KernelUnresponsive, KernelGone) as error:
            client.close()
            kernel.client = None
            ended = await manager.sandbox.exit_status(kernel.id)
            if ended is None:
                cause = f"it did not answer when the gateway restarted ({error})"
            else:
                cause = f"{ended.describe(manager.settings.mem_limit_mb)} while the gateway restarted"
            await manager.sandbox.remove(kernel.id)
            await _mark_dead(manager, kernel, cause)
            return
        kernel.state = "idle"
        log.info("re-attached kernel %d", kernel.id)


async def _mark_dead(manager: KernelManager, kernel: Kernel, cause: str) -> None:
    kernel.state, kernel.last_death, kernel.container_id = "dead", cause, ""
    log.warning("kernel %d is dead: %s", kernel.id, cause)
    await manager.store.update_kernel(kernel.id, state="dead", last_death=cause, container_id="")


def _remove_socket_dirs_except(instance_dir: Path, keep: set[str]) -> None:
    if not instance_dir.is_dir():
        return
    for entry in instance_dir.iterdir():
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
