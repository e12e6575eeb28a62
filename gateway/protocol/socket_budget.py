"""Room for many ZMQ sockets in one process: libzmq allows 1023 per context unless told otherwise.

A node agent relays each kernel's channels through about twenty sockets and a gateway holds three per kernel
connection (more with websockets), so both raise the context's ``MAX_SOCKETS`` to what their kernel limit needs,
and the process's soft open-file limit with it (each socket takes file descriptors: its mailbox, its
connections, a listener), never above the hard limit.
"""

from __future__ import annotations

import logging
import resource
from typing import Any

import zmq

log = logging.getLogger(__name__)

#: libzmq's own default.
DEFAULT_MAX_SOCKETS = 1023
#: File descriptors per socket to allow for (mailbox, a connection or two, a listener).
_FDS_PER_SOCKET = 3


def allow_sockets(context: zmq.Context[Any], sockets: int) -> int:
    """Let ``context`` open ``sockets`` sockets (never fewer than libzmq's default), raising the soft open-file
    limit towards what they need; returns the context's limit. Call before the context makes its first socket."""
    wanted = max(DEFAULT_MAX_SOCKETS, sockets)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted * _FDS_PER_SOCKET + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        if soft < needed:
            log.warning("open-file limit %d is below the %d that %d ZMQ sockets may need", soft, needed, wanted)
    context.set(zmq.MAX_SOCKETS, wanted)
    return int(context.get(zmq.MAX_SOCKETS))
