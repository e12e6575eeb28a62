"""IOPub plumbing without thread hand-offs on the hot path: same messages, same order.

Stock ipykernel sends every IOPub message from its IOPub thread: each ``send`` appends a callback to a queue and wakes
that thread over an inproc socket, and every ``sys.stdout.flush()`` (six per ``execute_request``: the displayhook, the
execute handler and the shell dispatcher each flush stdout and stderr) schedules a flush plus an event and blocks
until the IOPub thread has run both. Each is a hand-off of the GIL between threads: tens of microseconds on a quiet
machine, up to a scheduler time slice on a busy one. A ``1+1`` pays about twenty of them.

- ``QuickIOPubThread``: a thread with nothing queued or running sends a message itself, under a lock that every use
  of the socket takes (so the socket is never used by two threads at once); otherwise the message is queued behind
  what is there, as in ipykernel. Messages sent from one thread therefore leave in the order they were sent, before
  and after, exactly as through the queue. Forked children, and any thread when the IOPub thread is not running,
  take ipykernel's path unchanged. Wake-ups are coalesced (one per batch of queued callbacks). The XPUB socket's
  subscription events (ipykernel answers each with an ``iopub_welcome``) are read under the same lock.
- ``QuickFlushOutStream``: ``flush()`` returns at once when there is nothing to flush — no buffered text, no flush
  pending, nothing unread in the captured file descriptor — and the IOPub thread has nothing queued or running (so
  every message sent before is on the socket; a timed flush of buffered text, which ipykernel runs on that thread
  outside the queue, counts as running). Otherwise it is ipykernel's flush, unchanged. So what a flush
  guaranteed (text before the ``execute_result``, IOPub messages on the socket before the shell reply or an
  ``input_request``) still holds; only the round trip that had nothing to wait for is gone.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import threading
from collections.abc import Callable
from typing import Any

import zmq
from ipykernel.iostream import CHILD, IOPubThread, OutStream

from jupycell_kernel.frames import readable, send_frames


class QuickIOPubThread(IOPubThread):
    """``IOPubThread`` whose callers send directly when nothing is ahead of them (see the module docstring)."""

    def __init__(
        self, *args: Any, direct: bool = True, coalesce: bool = True, fast_send: bool = False, **kwargs: Any
    ) -> None:
        # Set before IOPubThread.__init__, which sets up the XPUB listener that uses them.
        self._socket_lock = threading.RLock()
        self.direct = direct
        self.coalesce = coalesce
        self.fast_send = fast_send
        self._wake_pending = False
        self._running = False  # written by the IOPub thread only: a popped callback has not returned yet
        super().__init__(*args, **kwargs)

    # --- the queue ------------------------------------------------------------------------------------------

    def schedule(self, f: Callable[[], Any]) -> None:
        """Run ``f`` on the IOPub thread (at once if it is not running), after every callback scheduled before."""
        if not self.thread.is_alive():
            f()
            return
        self._events.append(f)
        if not self.coalesce:
            self._event_pipe.send(b"")
        elif not self._wake_pending:
            self._wake_pending = True
            self._event_pipe.send(b"")

    def _handle_event(self, msg: Any) -> None:
        self._wake_pending = False  # before reading the length: a later append sends its own wake-up
        try:
            for _ in range(len(self._events)):
                self._running = True  # before popleft: idle() never sees an empty queue and nothing running
                self._events.popleft()()
        finally:
            self._running = False

    def idle(self) -> bool:
        """True when every callback scheduled so far has returned (every IOPub message so far is on the socket)."""
        return not self._events and not self._running

    # --- sending --------------------------------------------------------------------------------------------

    def send_multipart(self, *args: Any, **kwargs: Any) -> None:
        if (
            self.direct
            and threading.current_thread() is not self.thread
            and self.thread.is_alive()
            and self._is_master_process()
        ):
            with self._socket_lock:
                if self.idle() and not self.closed:
                    try:
                        if self.fast_send:
                            send_frames(self.socket, *args, **kwargs)
                        else:
                            self.socket.send_multipart(*args, **kwargs)
                        self._check_subscriptions()
                    except zmq.ZMQError as error:  # closed under us at shutdown, as ipykernel tolerates
                        if error.errno != zmq.ENOTSOCK:
                            raise
                    return
        self.schedule(lambda: self._really_send(*args, **kwargs))

    def _really_send(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        if self._check_mp_mode() == CHILD:
            super()._really_send(msg, *args, **kwargs)
            return
        with self._socket_lock:
            super()._really_send(msg, *args, **kwargs)
            if not self.closed:
                self._check_subscriptions()

    # --- XPUB subscriptions: read under the socket lock -------------------------------------------------------

    def _setup_xpub_listener(self) -> None:
        if not hasattr(self.socket, "getsockopt") or self.socket.getsockopt(zmq.TYPE) != zmq.XPUB:
            return
        # The socket object, as ipykernel's ZMQStream registers it: the loop closes it when the thread ends.
        self.io_loop.add_handler(self.socket, self._on_socket_events, self.io_loop.READ)

    def _on_socket_events(self, fd: int, events: int) -> None:
        self._read_subscriptions()

    def _read_subscriptions(self) -> None:
        """Answer every subscription event waiting on the XPUB socket (ipykernel's ``_handle_subscription``)."""
        with self._socket_lock:
            while not self.closed and self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._handle_subscription(self.socket.recv_multipart(zmq.NOBLOCK))

    def _check_subscriptions(self) -> None:
        """After a send (lock held): a send can consume the socket's edge-triggered readiness signal, so look for a
        waiting subscription event ourselves and have the IOPub thread read it."""
        if readable(self.socket) if self.fast_send else self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self.schedule(self._read_subscriptions)


class QuickFlushOutStream(OutStream):
    """``OutStream`` whose ``flush()`` skips the IOPub round trip when it would have nothing to wait for."""

    def flush(self) -> None:
        if not self._nothing_to_flush():
            super().flush()

    def _flush(self) -> None:
        """ipykernel's ``_flush``; on the IOPub thread it counts as running a callback (it also runs from a
        timer, outside the queue), so that between taking the buffered text and queueing its message nobody
        concludes there is nothing to wait for and sends ahead of it."""
        pub = self.pub_thread
        if not isinstance(pub, QuickIOPubThread) or threading.current_thread() is not pub.thread:
            super()._flush()
            return
        was_running = pub._running
        pub._running = True  # before the buffers are taken
        try:
            super()._flush()
        finally:
            pub._running = was_running

    def _nothing_to_flush(self) -> bool:
        pub = self.pub_thread
        if not isinstance(pub, QuickIOPubThread) or self.echo is not None:
            return False
        if threading.current_thread() is pub.thread:
            return False  # ipykernel flushes synchronously there: keep that
        with self._buffer_lock:
            if self._buffers:
                return False
        if self._flush_pending or self._subprocess_flush_pending:
            return False
        if self._fid is not None and _unread_bytes(self._fid):
            return False  # C-level output still in the captured pipe: let the full flush give it its chance
        return pub.idle()


def _unread_bytes(fd: int) -> int:
    """Bytes waiting to be read in pipe ``fd`` (FIONREAD); 1 when that cannot be told (so: flush)."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 1
