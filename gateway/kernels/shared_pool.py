"""The warm pool shared by the replicas of one deployment (PostgreSQL): the same interface as ``KernelPool``
(``start``, ``claim``, ``discard``, ``status``, ``close``), its kernels recorded in a ``PoolLedger``.

- Only the leader (``LeaderRole``) fills it: it records each kernel before starting it (``starting``), starts it
  through the same ``KernelLauncher`` as every kernel, and marks it ``ready`` once it answers. It then closes its
  own connection: whoever claims the kernel connects its own.
- Any replica claims: the ledger hands each ready kernel out exactly once. Every replica keeps connections ready
  (connected and answering) to a few of the pool's ready kernels ahead of time, so a claim that gets one of them
  costs the claim's round trip and nothing more; for any other kernel the claimer restores its handle through
  ``SandboxBackend.restore``, connects (``KernelConnector``) and waits until the kernel answers on that connection.
  A claimed kernel whose container died is removed and the next one is tried. A connection made ahead of time to
  a kernel another replica claimed is closed on the next look at the pool (within ``interval``).
- Over several nodes (a ``NodeBackend``: the agents backend), ``size`` is per node: the leader starts pool kernels
  on each node that takes kernels until it has ``size`` ready or starting, and a claim prefers a kernel on the node
  placement prefers now (the most free capacity).
- A pool container that dies unclaimed is dropped by whichever replica hears of it first; the leader's janitor
  (``gateway.kernels.janitor``) drops the ones nobody heard of. Closing a replica leaves the pool's kernels to the
  others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from gateway.errors import KernelGone, KernelUnresponsive
from gateway.kernels.launcher import KernelLauncher, Launched
from gateway.kernels.leader import LeaderRole
from gateway.kernels.pool import ReadyKernel
from gateway.kernels.ports import KernelConnection, NodeBackend, PoolCounts, PooledKernel, PoolLedger
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)

#: Longest pause between failed refill attempts (the engine is down, the image is missing...).
_MAX_BACKOFF = 30.0
#: A claimed kernel that has not answered this soon is asked about its container (dead ones are skipped at once).
_FIRST_LOOK = 1.0
#: Claimed kernels found dead before one answers: then the start goes cold.
_CLAIM_TRIES = 3
#: Most ready kernels a replica keeps a connection to ahead of time.
_MAX_AHEAD = 8
#: Most ready kernels read at each look at a pool spread over nodes (to count them per node).
_MAX_LISTED = 1000


class SharedKernelPool:
    """Pre-started kernels of one runtime, shared by every replica. Create on the loop, ``start()``, ``close()``."""

    def __init__(
        self,
        launcher: KernelLauncher,
        ledger: PoolLedger,
        leader: LeaderRole,
        new_kernel_id: Callable[[], int],
        *,
        size: int,
        parallel: int,
        runtime: str,
        interval: float,
    ) -> None:
        self.launcher = launcher
        self.ledger = ledger
        self.leader = leader
        self._new_kernel_id = new_kernel_id
        self.size = size
        self.parallel = parallel
        self.runtime = runtime
        self.interval = interval
        #: Marks the pool records this process starts (a new leader drops other fillers' unfinished ones).
        self.filler = uuid.uuid4().hex
        self.hits = 0
        self.misses = 0
        self.failures = 0
        self._counts = PoolCounts(0, 0)
        self._nodes = launcher.backend if isinstance(launcher.backend, NodeBackend) else None
        self._ready_on: dict[str, int] = {}  # ready kernels per node, as last read (a NodeBackend only)
        self._starting_on: dict[int, str | None] = {}  # pool kernels this replica is starting: id -> node
        self._ahead: dict[int, Launched] = {}  # connections made ahead of time to ready kernels, by kernel id
        self._connecting: set[int] = set()
        self._starting = 0
        self._backoff = 0.0
        self._closed = False
        self._changed = asyncio.Event()
        self._tasks = TaskSet()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the pool's records (and fill them while this replica leads) in the background."""
        if self.size > 0:
            self._tasks.spawn(self._watch(), name="shared-pool")

    async def close(self) -> None:
        """Stop filling. Unclaimed kernels stay for the other replicas (the janitor sweeps them if none is left)."""
        self._closed = True
        await self._tasks.cancel_all()
        for kernel_id in list(self._ahead):
            self._ahead.pop(kernel_id).client.close()

    # --- used by the core ---------------------------------------------------------------------------------

    async def claim(self, runtime: str) -> ReadyKernel | None:
        """A ready kernel of ``runtime``, connected and answering, now the caller's alone; None if the pool has
        none (start one cold)."""
        if self.size <= 0 or runtime != self.runtime:
            return None
        for _ in range(_CLAIM_TRIES):
            entry = await self.ledger.claim(runtime, prefer=self._preferred())
            if entry is None:
                break
            launched = self._ahead.pop(entry.kernel_id, None) or await self._connect(entry)
            self._changed.set()
            if launched is not None:
                self.hits += 1
                return ReadyKernel(entry.kernel_id, entry.jupyter_id, launched, entry.ready_at)
        self.misses += 1
        self._changed.set()
        return None

    def discard(self, container_id: str) -> bool:
        """A container of the deployment died that no kernel of this replica has: if it was an unclaimed pool
        kernel, drop it (in the background: returns False at once)."""
        if self.size > 0:
            self._tasks.spawn(self._drop_container(container_id), name="pool-discard")
        return False

    def moved(self, sandbox_id: int) -> None:
        """A ready kernel is reached at a new address: the connection made to it ahead of time is closed (a claim
        restores its handle, at the new address); the next look at the pool connects again."""
        ahead = self._ahead.pop(sandbox_id, None)
        if ahead is not None:
            ahead.client.close()
            self._changed.set()

    def status(self) -> dict[str, Any]:
        """What GET /pool shows: the deployment's pool as last seen, this replica's hits and misses; over several
        nodes, ``size`` is per node and ``nodes`` has each node's ready kernels."""
        status: dict[str, Any] = {
            "size": self.size,
            "ready": self._counts.ready,
            "starting": max(self._counts.starting, self._starting),
            "hits": self.hits,
            "misses": self.misses,
            "failures": self.failures,
            "shared": True,
            "leader": self.leader.is_leader,
        }
        if self._nodes is not None:
            status["per_node"] = True
            status["nodes"] = {node: {"ready": self._ready_on.get(node, 0)} for node in self._nodes.nodes()}
        return status

    def _preferred(self) -> list[int]:
        """The kernels connected ahead of time, those on the node placement prefers now first."""
        if self._nodes is None:
            return list(self._ahead)
        nodes = self._nodes
        rank = {name: n for n, name in enumerate(nodes.nodes())}
        return sorted(
            self._ahead, key=lambda k: rank.get(nodes.node_of(self._ahead[k].handle.to_state()) or "", len(rank))
        )

    # --- claiming -----------------------------------------------------------------------------------------

    async def _connect(self, entry: PooledKernel) -> Launched | None:
        """Connect to a claimed kernel; None (and it is removed) if its container is gone."""
        handle = self.launcher.backend.restore(entry.kernel_id, entry.sandbox, entry.hmac_key)
        client = self.launcher.connector.connect(handle.connection_info)
        try:
            await self._until_ready(entry.kernel_id, client)
        except (KernelUnresponsive, KernelGone) as error:
            log.warning("claimed warm-pool kernel %d is unusable (%s); removing it", entry.kernel_id, error)
            self.failures += 1
            self._tasks.spawn(self.launcher.teardown(entry.kernel_id, client), name="pool-dispose")
            return None
        except BaseException:
            client.close()
            self._tasks.spawn(self.launcher.teardown(entry.kernel_id, None), name="pool-dispose")
            raise
        return Launched(handle, client)

    async def _until_ready(self, kernel_id: int, client: KernelConnection) -> None:
        """Wait until the kernel answers on ``client``; KernelGone at once if its container is not running."""
        try:
            await client.wait_ready(min(_FIRST_LOOK, self.launcher.start_timeout))
        except KernelUnresponsive:
            if await self.launcher.backend.exit_status(kernel_id) is not None:
                raise KernelGone("its container is not running") from None
            await client.wait_ready(self.launcher.start_timeout)

    # --- connections made ahead of time -------------------------------------------------------------------

    def _connect_ahead(self, ready: list[PooledKernel]) -> None:
        """Keep connections to the ready kernels listed (close the ones to kernels no longer ready: claimed by
        another replica, or dropped)."""
        listed = {entry.kernel_id for entry in ready}
        for kernel_id in [k for k in self._ahead if k not in listed]:
            self._ahead.pop(kernel_id).client.close()
        for entry in ready:
            if entry.kernel_id not in self._ahead and entry.kernel_id not in self._connecting:
                self._connecting.add(entry.kernel_id)
                self._tasks.spawn(self._connect_one_ahead(entry), name="pool-connect")

    async def _connect_one_ahead(self, entry: PooledKernel) -> None:
        handle = self.launcher.backend.restore(entry.kernel_id, entry.sandbox, entry.hmac_key)
        client = self.launcher.connector.connect(handle.connection_info)
        try:
            await self._until_ready(entry.kernel_id, client)
        except (KernelUnresponsive, KernelGone):
            client.close()  # dead: its death is dropped by whoever hears of it, or by the janitor
            return
        except BaseException:
            client.close()
            raise
        finally:
            self._connecting.discard(entry.kernel_id)
        self._keep_ahead(entry.kernel_id, Launched(handle, client))

    def _keep_ahead(self, kernel_id: int, launched: Launched) -> None:
        if self._closed or kernel_id in self._ahead:
            launched.client.close()
        else:
            self._ahead[kernel_id] = launched

    async def _drop_container(self, container_id: str) -> None:
        kernel_id = await self.ledger.drop_container(container_id)
        if kernel_id is not None:
            log.warning("warm-pool kernel %d died before it was claimed; replacing it", kernel_id)
            ahead = self._ahead.pop(kernel_id, None)
            await self.launcher.teardown(kernel_id, None if ahead is None else ahead.client)
            self._changed.set()

    # --- filling (the leader only) ------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every ``interval`` (or at once when a claim or a start changed something): read the pool's counts; while
        this replica leads, start kernels while the pool is short, at most ``parallel`` at a time."""
        while not self._closed:
            self._changed.clear()
            starting = dict(self._starting_on)  # before the read: a start that ends meanwhile is counted once
            try:
                self._counts = await self.ledger.counts(self.runtime)
                listed = min(self.size, _MAX_AHEAD) if self._nodes is None else _MAX_LISTED
                ready = await self.ledger.ready(self.runtime, listed)
            except Exception as error:
                log.warning("warm pool: cannot read its records: %s", error)
            else:
                self._connect_ahead(ready[:_MAX_AHEAD])
                if self._nodes is not None:
                    self._ready_on = self._per_node(ready)
                if self.leader.is_leader:
                    self._fill(starting)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.interval)

    def _per_node(self, ready: list[PooledKernel]) -> dict[str, int]:
        assert self._nodes is not None
        counts: dict[str, int] = {}
        for entry in ready:
            node = self._nodes.node_of(entry.sandbox)
            if node is not None:
                counts[node] = counts.get(node, 0) + 1
        return counts

    def _fill(self, starting_on: dict[int, str | None]) -> None:
        """Start what the pool lacks (on each node that takes kernels, for a ``NodeBackend``), at most
        ``parallel`` at a time. ``starting_on``: this replica's starts as they were before the records were read."""
        if self._nodes is None:
            starting = max(self._counts.starting, self._starting)
            for _ in range(max(0, min(self.size - self._counts.ready - starting, self.parallel - self._starting))):
                self._start_one(None)
            return
        for node in self._nodes.nodes():
            have = self._ready_on.get(node, 0) + sum(1 for n in starting_on.values() if n == node)
            for _ in range(max(0, min(self.size - have, self.parallel - self._starting))):
                self._start_one(node)

    def _start_one(self, node: str | None) -> None:
        kernel_id = self._new_kernel_id()
        self._starting += 1
        self._starting_on[kernel_id] = node
        self._tasks.spawn(self._add_one(kernel_id, node), name="pool-start")

    async def _add_one(self, kernel_id: int, node: str | None) -> None:
        jupyter_id = str(uuid.uuid4())
        reserved = False
        launched: Launched | None = None
        try:
            if self._backoff:
                await asyncio.sleep(self._backoff)
            await self.ledger.reserve(kernel_id, jupyter_id, self.runtime, self.filler)
            reserved = True
            launched = await self.launcher.launch(kernel_id, jupyter_id, self.runtime, pooled=True, node=node)
            handle = launched.handle
            if await self.ledger.mark_ready(kernel_id, handle.to_state(), handle.key):
                self._keep_ahead(kernel_id, launched)  # this replica's connection; others connect their own
            else:
                await self.launcher.teardown(kernel_id, launched.client)  # swept meanwhile (lost the lead)
            self._backoff = 0.0
        except asyncio.CancelledError:
            if reserved:
                await asyncio.shield(self._forget(kernel_id, launched))
            raise
        except Exception as error:
            self.failures += 1
            self._backoff = min(_MAX_BACKOFF, max(0.5, self._backoff * 2))
            log.warning("warm-pool kernel failed to start (retrying in %.1f s): %s", self._backoff, error)
            if reserved:
                await self._forget(kernel_id, launched)
        finally:
            self._starting -= 1
            self._starting_on.pop(kernel_id, None)
            self._changed.set()

    async def _forget(self, kernel_id: int, launched: Launched | None) -> None:
        """A pool start failed or was cancelled: its record goes, and its container if it was made."""
        with contextlib.suppress(Exception):
            await self.ledger.drop(kernel_id)
        if launched is not None:
            await self.launcher.teardown(kernel_id, None)
