"""The store's one thread: transactions in the order they were asked for, run ends committed together.

Every job is a function of a connection, run in a transaction of its own on one thread, in the order the event loop
handed them in (so a write nobody awaits is still done before any later one). Jobs wait on the loop while the thread
is busy and go to it together when it is free: one hand-off for all of them. Consecutive *groupable* jobs (a run's
end, the most frequent write: issue 15) share one transaction and one commit. Should that transaction fail, each of
its jobs is run again alone, so a job fails only for its own reason (a fenced write, a lost database) and the others
are committed. A job's future is settled once its transaction is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.errors import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most jobs committed in one transaction.
GROUP_LIMIT = 64


@dataclass
class Job:
    work: Callable[[Connection], Any]
    future: asyncio.Future[Any] | None  # None: nobody waits (failures are logged with ``what``)
    what: str = ""
    groupable: bool = False


class StoreThread:
    """Runs ``Job``s on one thread. Use from the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._waiting: list[Job] = []
        self._busy = False
        self._closed = False
        self._idle: asyncio.Event | None = None

    async def run(self, work: Callable[[Connection], T], *, groupable: bool = False) -> T:
        """Run ``work`` in a transaction; return its result once committed (StoreUnavailable on a database error)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._add(Job(work, future, groupable=groupable))
        return await future

    def queue(self, work: Callable[[Connection], Any], what: str) -> None:
        """Run ``work`` in a transaction without waiting for it (a failure is logged as ``what`` failing)."""
        if self._closed:
            log.warning("store: %s dropped, the store is closed", what)
            return
        self._add(Job(work, None, what))

    async def close(self) -> None:
        """Finish every job handed in, then dispose of the engine and stop the thread."""
        self._closed = True
        while self._busy or self._waiting:
            self._idle = asyncio.Event()
            await self._idle.wait()
        await asyncio.get_running_loop().run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=True)

    # --- on the loop ----------------------------------------------------------------------------------------

    def _add(self, job: Job) -> None:
        self._waiting.append(job)
        if not self._busy:
            self._hand_over(asyncio.get_running_loop())

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs, self._waiting = self._waiting, []
        self._busy = True

        def done(ran: Future[list[tuple[bool, Any]]]) -> None:
            loop.call_soon_threadsafe(self._settle, jobs, ran)

        self._thread.submit(self._run_all, jobs).add_done_callback(done)

    def _settle(self, jobs: list[Job], ran: Future[list[tuple[bool, Any]]]) -> None:
        self._busy = False
        error = ran.exception()
        outcomes = ran.result() if error is None else [(False, error)] * len(jobs)
        for job, (ok, value) in zip(jobs, outcomes, strict=True):
            if job.future is None:
                if not ok:
                    log.error("store: %s failed: %s", job.what, value)
            elif not job.future.done():  # a waiter that was cancelled meanwhile has gone
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
        if self._waiting:
            self._hand_over(asyncio.get_running_loop())
        elif self._idle is not None:
            self._idle.set()

    # --- on the thread ---------------------------------------------------------------------------------------

    def _run_all(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """(committed, result or exception) of each job, in order; consecutive groupable jobs in one transaction."""
        outcomes: list[tuple[bool, Any]] = []
        start = 0
        while start < len(jobs):
            end = start + 1
            if jobs[start].groupable:
                while end < len(jobs) and jobs[end].groupable and end - start < GROUP_LIMIT:
                    end += 1
            outcomes += self._run_group(jobs[start:end])
            start = end
        return outcomes

    def _run_group(self, group: list[Job]) -> list[tuple[bool, Any]]:
        if len(group) > 1:
            try:
                with self.engine.begin() as connection:
                    return [(True, job.work(connection)) for job in group]
            except Exception as error:  # rolled back: each job again alone, so only its own failure fails it
                log.info("store: a group of %d writes failed (%s); writing them one by one", len(group), error)
        return [self._run_one(job) for job in group]

    def _run_one(self, job: Job) -> tuple[bool, Any]:
        try:
            with self.engine.begin() as connection:
                return True, job.work(connection)
        except SQLAlchemyError as error:
            return False, StoreUnavailable(f"Database error: {error.__class__.__name__}: {error}")
        except Exception as error:  # a domain error raised inside the transaction (a fenced write)
            return False, error
