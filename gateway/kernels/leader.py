"""The leader: the one replica of a deployment that fills the shared warm pool and sweeps what no one owns.

Every replica runs a ``LeaderRole``: every ``interval`` seconds it tries the deployment's ``LeaderLock`` (the
holder checks it still holds it). The lock is lost when its holder dies, so another replica takes the role over
within one interval. Work done by a leader is idempotent (a second filler would only overfill, a second sweeper
removes nothing twice), so the short overlap a network partition can cause is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.kernels.ports import LeaderLock
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)


class LeaderRole:
    """Whether this replica leads now; ``changed`` is set whenever that flips."""

    def __init__(self, lock: LeaderLock, interval: float) -> None:
        self.lock = lock
        self.interval = interval
        self.is_leader = False
        self.changed = asyncio.Event()
        self._tasks = TaskSet()

    def start(self) -> None:
        self._tasks.spawn(self._keep_trying(), name="leader")

    async def close(self) -> None:
        """Stop trying; give the role up at once (another replica takes it on its next try)."""
        await self._tasks.cancel_all()
        if self.is_leader:
            self._set(False)
        with contextlib.suppress(Exception):
            await self.lock.resign()

    async def check(self) -> bool:
        """Try the lock once now; whether this replica leads."""
        try:
            leads = await self.lock.try_acquire()
        except Exception as error:  # the database is unreachable: not the leader until it answers again
            log.warning("leader lock unavailable: %s", error)
            leads = False
        self._set(leads)
        return leads

    def _set(self, leads: bool) -> None:
        if leads != self.is_leader:
            self.is_leader = leads
            log.info("this replica %s the leader", "is now" if leads else "is no longer")
            self.changed.set()

    async def _keep_trying(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
