"""Issue 11: this gateway as one of several replicas sharing a database. Any replica serves any kernel.

- A kernel this replica owns (while its lease is certainly alive) is served here, with no database round trip.
- A kernel another live replica owns is served by that one: ``locate`` returns its URL and the HTTP layer forwards.
- A kernel whose owner's lease expired (the owner died or was silent) is adopted: epoch bumped, runs still open
  recorded ``interrupted``, the handle restored from the stored state and re-attached (same memory; what ran is
  interrupted), exactly as start-up recovery takes a kernel back. This happens on the first request for it, and
  without one by the sweep that runs with every heartbeat.
- A kernel adopted away from this replica (it was silent past its lease) is dropped: its connection closed, its
  container left alone, its websockets told to reconnect. A write this replica still attempts is refused by the
  store (epoch fencing), which also drops it.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import KernelNotFound
from gateway.kernels import recovery
from gateway.kernels.kernel import Kernel, KernelEvent
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.ports import KernelLocation, KernelOwnership

log = logging.getLogger(__name__)

ADOPTED_DETAIL = (
    "the gateway replica serving this kernel stopped while this cell ran; outputs up to that moment are kept"
)


class ReplicaCoordinator:
    """Ownership of this replica's kernels: lease renewal, adoption, dropping kernels adopted elsewhere."""

    def __init__(self, ownership: KernelOwnership, lifecycle: KernelLifecycle, reattach_timeout: float) -> None:
        self.ownership = ownership
        self.lifecycle = lifecycle
        self.registry = lifecycle.registry
        self.reattach_timeout = reattach_timeout
        self._adopting: dict[int, asyncio.Task[bool]] = {}

    async def join(self) -> None:
        """Start-up, before recovery: register, and claim the kernels no live replica owns."""
        await self.ownership.join()
        self.ownership.watch_lost(self.lost)
        claimed = await self.ownership.claim_orphans()
        log.info("replica %s joined; claimed %d kernels", self.ownership.replica_id, len(claimed))

    async def keep_alive(self, interval: float) -> None:
        """Renew the lease, then adopt orphans, every ``interval`` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.ownership.heartbeat()
                for location in await self.ownership.orphans():
                    await self._adopt_once(location)
            except Exception:
                log.exception("replica %s: heartbeat or adoption failed", self.ownership.replica_id)

    # --- routing ----------------------------------------------------------------------------------------------

    def _local(self, kernel_ref: int | str) -> Kernel | None:
        try:
            return self.registry.get(kernel_ref) if isinstance(kernel_ref, int) else self.registry.find(kernel_ref)
        except KernelNotFound:
            return None

    async def locate(self, kernel_ref: int | str, *, forwarded: bool = False) -> str | None:
        """The URL of the live replica that serves the kernel, or None to serve it here (adopted first if its
        owner is gone; unknown kernels too: the route says 404). ``forwarded``: the request already came from a
        replica, never send it on (a kernel moved meanwhile is then served here if possible, else unknown here)."""
        kernel = self._local(kernel_ref)
        if kernel is not None and self.ownership.lease_valid() and self.ownership.holds(kernel.id):
            return None  # the hot path: no database round trip
        for _ in range(3):
            location = await self.ownership.locate(kernel_ref)
            if location is None:
                if kernel is not None:
                    self.drop(kernel, "it is no longer stored")
                return None
            if location.owner == self.ownership.replica_id and self.ownership.holds(location.kernel_id):
                # Still ours (our lease lapsed, nobody took it); or, not in the registry, being shut down here:
                # never adopted back from under its own shutdown (the route answers 404).
                return None
            if kernel is not None:
                self.drop(kernel, "another gateway replica serves it now")
                kernel = None
            if location.owner_alive and location.owner != self.ownership.replica_id:
                return None if forwarded else location.owner_url
            if await self._adopt_once(location):
                return None
        return None

    async def served_by(self, kernel_ref: int | str, owner_url: str) -> bool:
        """Whether the replica at ``owner_url`` still serves the kernel: it owns it and its lease is alive."""
        location = await self.ownership.locate(kernel_ref)
        return location is not None and location.owner_alive and location.owner_url == owner_url

    async def _adopt_once(self, location: KernelLocation) -> bool:
        """Adopt the kernel unless a concurrent adoption of it here is under way (then wait for that one)."""
        task = self._adopting.get(location.kernel_id)
        if task is None:
            task = asyncio.ensure_future(self._adopt(location))
            self._adopting[location.kernel_id] = task
            task.add_done_callback(lambda _: self._adopting.pop(location.kernel_id, None))
        return await asyncio.shield(task)

    async def _adopt(self, location: KernelLocation) -> bool:
        adopted = await self.ownership.adopt(location.kernel_id, location.epoch, ADOPTED_DETAIL)
        if adopted is None:
            return False
        record = adopted.record
        log.warning(
            "replica %s adopts kernel %d from %s (epoch %d)",
            self.ownership.replica_id, record.id, location.owner, location.epoch + 1,
        )  # fmt: skip
        if (stale := self._local(record.id)) is not None:
            self.registry.remove(stale.id)
        if record.state == "dead":
            self.registry.add(recovery.kernel_from(record))
            return True
        # Always interrupted: a run shorter than the flush interval, or a websocket's execution, left no record.
        await recovery.take_back(self.lifecycle, record, interrupt=True, timeout=self.reattach_timeout)
        return True

    # --- kernels adopted elsewhere ----------------------------------------------------------------------------

    def lost(self, kernel_id: int) -> None:
        """The store refused a write: another replica owns the kernel now (called on the loop)."""
        kernel = self._local(kernel_id)
        if kernel is not None:
            self.drop(kernel, "another gateway replica serves it now")

    def drop(self, kernel: Kernel, why: str) -> None:
        """Forget the kernel here without touching its container: close the connection (a run waiting on it ends),
        tell its websockets to reconnect (they reach the new owner)."""
        if self.registry.remove(kernel.id) is None:
            return
        self.ownership.release(kernel.id)
        log.warning("replica %s drops kernel %d: %s", self.ownership.replica_id, kernel.id, why)
        if kernel.client is not None:
            kernel.client.mark_dead(f"this gateway replica no longer serves the kernel: {why}")
        self.lifecycle.let_go(kernel)
        kernel.handle = None
        kernel.notify(KernelEvent.MOVED)
