"""A kernel connection's sockets read from the event loop without a future per message (issue 15).

``zmq.asyncio`` gives every receive a future, a queued event and a pass through its own handler, and wraps every
flag and event in an ``enum`` on the way (~100 enum objects per ``1+1`` run). Here each socket is a plain ZMQ socket
that never blocks (``KernelSocket``), read with one reader callback on its file descriptor (``Inbox``):

- ``Inbox.take()`` returns the frames of a queued message at once (a non-blocking receive), or None.
- Only when none is queued does a reader wait (``Inbox.wait``), on a future the reader callback settles when the
  socket reports a message, or the kernel's death, a wake-up or its deadline.

A ZMQ socket's descriptor only signals a *change*: reading ``EVENTS`` (which ``take`` and the callback both do)
consumes the signal. So every wait starts with a ``take``, and after a send on a socket (which can consume it too)
``poke()`` checks the socket for its waiters: no message is left unnoticed in a queue while a reader waits.
"""

from __future__ import annotations

import asyncio
from typing import Any

import zmq

_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)


class KernelSocket(zmq.Socket[bytes]):
    """A socket whose sends never block the event loop: a message that cannot be queued at once (a full queue, a
    relay that is gone) raises ``zmq.Again`` instead of waiting."""

    def send_multipart(
        self, msg_parts: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Any:
        return super().send_multipart(msg_parts, flags | _NOBLOCK, copy=copy, track=track, **kwargs)


class KernelContext(zmq.Context[KernelSocket]):
    """Makes ``KernelSocket``s; a shadow of the gateway's one context, so the same I/O thread and socket limit."""

    _socket_class = KernelSocket


class Inbox:
    """One socket, read on the event loop: ``take`` a queued message, or ``wait`` for one."""

    def __init__(self, socket: zmq.Socket[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.socket = socket
        self._loop = loop
        self._waiters: list[asyncio.Future[None]] = []
        self._fd: int | None = int(socket.get(zmq.FD))
        loop.add_reader(self._fd, self.poke)

    def take(self) -> list[bytes] | None:
        """The frames of the next queued message, or None if none is queued (or the socket is closed)."""
        socket = self.socket
        if socket.closed or not int(socket.get(_EVENTS)) & _POLLIN:
            return None
        frame = socket.recv(_NOBLOCK, copy=False)  # a frame says whether more follow: no getsockopt per frame
        frames = [frame.bytes]
        while frame.more:
            frame = socket.recv(_NOBLOCK, copy=False)
            frames.append(frame.bytes)
        return frames

    async def wait(self, died: asyncio.Future[Any], wake: asyncio.Future[Any] | None, deadline: float) -> None:
        """Return once a message is queued (the caller then ``take``s it; another reader may have taken it first),
        ``died`` or ``wake`` is done, the inbox is closed, or at ``deadline`` (loop time): ``asyncio.wait`` for this
        one case, without its sets, counters and extra future."""
        waiter = self._loop.create_future()

        def settle(_: Any = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        self._waiters.append(waiter)
        timer = self._loop.call_at(deadline, settle)
        died.add_done_callback(settle)
        if wake is not None:
            wake.add_done_callback(settle)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
            timer.cancel()
            died.remove_done_callback(settle)
            if wake is not None:
                wake.remove_done_callback(settle)

    def poke(self) -> None:
        """The reader callback, and called after each send: wake the waiters if a message is queued. Always reads
        ``EVENTS``, which consumes the descriptor's signal (else the loop would call this again and again)."""
        socket = self.socket
        if socket.closed:
            return
        if int(socket.get(_EVENTS)) & _POLLIN and self._waiters:
            for waiter in self._waiters[:]:
                if not waiter.done():
                    waiter.set_result(None)

    def close(self) -> None:
        """Stop watching the socket (before it is closed) and wake every waiter."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        for waiter in self._waiters[:]:
            if not waiter.done():
                waiter.set_result(None)
