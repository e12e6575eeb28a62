"""``batch_io_thread``: libzmq's I/O threads run as ``SCHED_BATCH``, so a send does not hand them the CPU at once.

Every message the kernel sends (four on IOPub and the reply, for a ``1+1``) ends with libzmq waking its I/O thread,
which writes the frames to the socket. Linux lets a thread that wakes up preempt the one that woke it (it slept, so
it is owed CPU time): on a machine whose other cores are busy, each send then stops the kernel's main thread until
the I/O thread has run, five times per request. A ``SCHED_BATCH`` thread is scheduled exactly like a normal one
(same share of the CPU, same niceness) except that its wake-ups never preempt a running thread: it runs on an idle
core at once, or when the main thread next waits (for the next request, at the latest a scheduler tick later).
The bytes, their order and every socket are unchanged; only who runs first changes. Any thread may lower its own
process's threads to ``SCHED_BATCH`` without a capability; where it is refused (a sandbox runtime that does not
implement it), nothing changes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: The name libzmq gives its I/O threads (``ZMQ_THREAD_NAME_PREFIX`` unset): ``ZMQbg/IO/0``, ``ZMQbg/IO/1``, ...
IO_THREAD_PREFIX = "ZMQbg/IO/"


def batch_io_threads(tasks: Path = Path("/proc/self/task")) -> int:
    """Put this process's libzmq I/O threads in ``SCHED_BATCH``; returns how many were."""
    changed = 0
    for task in tasks.iterdir():
        try:
            if not (task / "comm").read_text().startswith(IO_THREAD_PREFIX):
                continue
            os.sched_setscheduler(int(task.name), os.SCHED_BATCH, os.sched_param(0))
            changed += 1
        except (OSError, ValueError):  # the thread ended, or the runtime refuses: it stays as it was
            log.debug("cannot make %s SCHED_BATCH", task.name, exc_info=True)
    return changed
