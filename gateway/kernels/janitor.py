"""The leader's janitor: what no replica owns any more, swept once for the whole deployment.

Every ``interval`` seconds (and when this replica becomes the leader), the leader:

- drops pool records a previous leader left unfinished (``starting``), and ready ones whose container is not
  running, removing their containers;
- forgets claimed pool records once their kernel is stored (or the claim is older than ``ttl``), and pending
  starts past their expiry (their replica died mid-start);
- removes containers of the deployment that no stored kernel, pool record or pending start knows of, once they
  were unknown on two sweeps in a row (a start in progress is always known; the second look is a margin).

Each replica still culls the idle kernels it runs itself (``gateway.kernels.culling``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.kernels.launcher import KernelLauncher
from gateway.kernels.leader import LeaderRole
from gateway.kernels.ports import PoolLedger

log = logging.getLogger(__name__)


class Janitor:
    """Sweeps while this replica leads. ``filler``: this process's pool records (never dropped as unfinished)."""

    def __init__(
        self, launcher: KernelLauncher, ledger: PoolLedger, leader: LeaderRole, *, filler: str, ttl: float
    ) -> None:
        self.launcher = launcher
        self.ledger = ledger
        self.leader = leader
        self.filler = filler
        self.ttl = ttl
        self._suspects: set[str] = set()  # container names unknown on the last sweep

    async def run(self, interval: float) -> None:
        """Sweep every ``interval`` seconds while leading, and at once on becoming the leader (until cancelled)."""
        while True:
            if self.leader.is_leader:
                try:
                    await self.sweep()
                except Exception:
                    log.exception("janitor: sweep failed")
            else:
                self._suspects.clear()
            self.leader.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.leader.changed.wait(), interval)

    async def sweep(self) -> None:
        backend = self.launcher.backend
        records = await self.ledger.unclaimed()  # before the containers: a ready record's container is listed
        containers = await backend.list_own()
        running = {c.kernel_id for c in containers if c.exit is None and c.kernel_id is not None}
        for kernel_id, state, filler in records:
            stale = state == "starting" and filler != self.filler
            dead = state == "ready" and kernel_id not in running
            if (stale or dead) and await self.ledger.drop(kernel_id):
                log.info("janitor: dropping %s pool kernel %d", "unfinished" if stale else "dead", kernel_id)
                await self.launcher.teardown(kernel_id, None)
        await self.ledger.sweep_claimed(self.ttl)
        await self.ledger.expire_admissions()
        known = await self.ledger.known_kernel_ids()  # after the containers: a start begun since is known
        unknown = {c.name: c.kernel_id for c in containers if c.kernel_id not in known}
        for name, orphan in unknown.items():
            if name in self._suspects:
                log.info("janitor: removing container %s, which no kernel or pool record knows", name)
                if orphan is not None:
                    await self.launcher.teardown(orphan, None)
                else:
                    await backend.remove_container(name)
        self._suspects = set(unknown)
