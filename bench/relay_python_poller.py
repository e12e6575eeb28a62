"""The agent's former relay (one Python poller thread for every kernel), kept for ``bench/relay_designs.py`` to
compare against: per-kernel relays between a kernel's ``ipc://`` sockets and TCP ports guarded by CurveZMQ.

Frames are relayed unchanged (messages are signed end to end by the kernel and the gateway; the agent cannot
read the HMAC key's use and does not need to): ROUTER (gateway side) to DEALER (kernel side) for shell, control,
stdin and hb, XPUB to XSUB for IOPub. The shell and stdin DEALERs of a kernel share one identity so the kernel's
``input_request`` finds its way back.

All relays live in ONE thread with one poller, whatever the number of kernels: a few sockets per kernel, no
thread per channel. Sends never block: a message that meets a full queue is dropped (as ZeroMQ's PUB does), and
each socket is drained in batches so a kernel flooding its output cannot starve the others. Other threads ask
the relay thread to open or close a kernel's relay and wait for the answer (``open``/``close`` block: call them
off the event loop).
"""

from __future__ import annotations

import logging
import os
import queue
import socket as pysocket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import zmq

from gateway.agent.keys import Keypair
from gateway.agent.protocol import CHANNELS, ZAP_DOMAIN

log = logging.getLogger(__name__)

#: Kernel channel suffixes of the ipc socket files (``<socket dir>/k-<n>``), as gateway.adapters.docker.sockets writes.
_IPC_SUFFIX = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}
_BATCH = 64  # messages moved from one socket before looking at the others
_HWM = 1000  # messages queued per peer before dropping (ZeroMQ's default; the gateway's sockets use it too)


@dataclass
class _Relay:
    ports: dict[str, int]
    sockets: list[zmq.Socket[Any]] = field(default_factory=list)


class Relays:
    """Every kernel relay of this agent, run by one thread."""

    def __init__(
        self,
        context: zmq.Context[Any],
        keypair: Keypair,
        *,
        bind_host: str,
        port_range: tuple[int, int],
        max_message_bytes: int,
    ) -> None:
        self._context = context
        self._keypair = keypair
        self._bind_host = bind_host
        self._port_range = port_range
        self._max_message_bytes = max_message_bytes
        self._relays: dict[int, _Relay] = {}
        self._snapshot: dict[int, dict[str, int]] = {}  # replaced (never changed) by the relay thread: read freely
        self._peer: dict[zmq.Socket[Any], zmq.Socket[Any]] = {}
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = pysocket.socketpair()
        self._wake_read.setblocking(False)
        self._poller = zmq.Poller()
        self._poller.register(self._wake_read.fileno(), zmq.POLLIN)
        self._running = True
        self.dropped = 0  # messages dropped on a full queue
        self._thread = threading.Thread(target=self._loop, name="relays", daemon=True)
        self._thread.start()

    # --- API for other threads ----------------------------------------------------------------------------

    def open(self, kernel_id: int, ipc_base: str, preferred: dict[str, int] | None = None) -> dict[str, int]:
        """Open the kernel's relay (ipc sockets ``<ipc_base>-<n>``); return its TCP port per channel. Ports in
        ``preferred`` are used when free (a restarted agent keeps its ports, so clients reconnect by
        themselves). Opening an open relay returns its ports."""
        return self._ask(lambda: self._open(kernel_id, ipc_base, preferred or {}))

    def close(self, kernel_id: int) -> None:
        """Close the kernel's relay; closing one that is not open is fine."""
        self._ask(lambda: self._close(kernel_id))

    def ports(self) -> dict[int, dict[str, int]]:
        """The open relays: kernel id to ports (does not wait for the relay thread: safe on the event loop)."""
        return self._snapshot

    def stop(self) -> None:
        if self._running:
            self._ask(self._close_all)
            self._running = False
            self._wake()
            self._thread.join(5)
            self._wake_read.close()
            self._wake_write.close()

    def _ask(self, command: Callable[[], Any]) -> Any:
        if not self._running or not self._thread.is_alive():
            raise RuntimeError("the relay thread is not running")
        done: Future[Any] = Future()
        self._commands.put((command, done))
        self._wake()
        return done.result(timeout=30)

    def _wake(self) -> None:
        try:
            self._wake_write.send(b"\0")
        except BlockingIOError:  # a wake-up is pending already
            pass

    # --- the relay thread ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        wake = self._wake_read.fileno()
        while self._running:
            try:
                ready = self._poller.poll()
            except zmq.ZMQError as error:
                if error.errno == zmq.ETERM:
                    return
                raise
            for sock, _ in ready:
                if sock == wake:
                    self._run_commands()
                elif sock in self._peer:  # not closed by a command of this round
                    self._forward(sock, self._peer[sock])

    def _run_commands(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                done.set_result(command())
            except Exception as error:  # reported to the caller
                done.set_exception(error)

    def _forward(self, source: zmq.Socket[Any], target: zmq.Socket[Any]) -> None:
        for _ in range(_BATCH):
            try:
                frames = source.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError as error:  # e.g. a message over the size cap
                log.debug("relay receive failed: %s", error)
                return
            try:
                target.send_multipart(frames, zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1
            except zmq.ZMQError as error:
                log.debug("relay send failed: %s", error)

    def _open(self, kernel_id: int, ipc_base: str, preferred: dict[str, int]) -> dict[str, int]:
        if kernel_id in self._relays:
            return dict(self._relays[kernel_id].ports)
        relay = _Relay(ports={})
        identity = b"relay-" + os.urandom(8).hex().encode()
        try:
            for channel in CHANNELS:
                iopub = channel == "iopub"
                front = self._socket(zmq.XPUB if iopub else zmq.ROUTER, relay)
                front.curve_server = True
                front.curve_secretkey = self._keypair.secret
                front.curve_publickey = self._keypair.public
                front.zap_domain = ZAP_DOMAIN
                front.setsockopt(zmq.TCP_KEEPALIVE, 1)
                front.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 60)
                relay.ports[channel] = self._bind(front, preferred.get(channel))
                back = self._socket(zmq.XSUB if iopub else zmq.DEALER, relay)
                if channel in ("shell", "stdin"):
                    back.identity = identity  # the kernel answers input_request to the shell request's sender
                back.connect(f"ipc://{ipc_base}-{_IPC_SUFFIX[channel]}")
                self._peer[front], self._peer[back] = back, front
                self._poller.register(front, zmq.POLLIN)
                self._poller.register(back, zmq.POLLIN)
        except BaseException:
            self._close_sockets(relay)
            raise
        self._relays[kernel_id] = relay
        self._take_snapshot()
        return dict(relay.ports)

    def _socket(self, kind: int, relay: _Relay) -> zmq.Socket[Any]:
        sock = self._context.socket(kind)
        relay.sockets.append(sock)
        sock.linger = 0
        sock.maxmsgsize = self._max_message_bytes  # the kernel is untrusted: it cannot make the agent buffer more
        sock.sndhwm = sock.rcvhwm = _HWM
        return sock

    def _bind(self, sock: zmq.Socket[Any], preferred: int | None) -> int:
        low, high = self._port_range
        if preferred is not None and low <= preferred <= high:
            try:
                sock.bind(f"tcp://{self._bind_host}:{preferred}")
                return preferred
            except zmq.ZMQError as error:
                log.warning("relay port %d not free (%s); taking another", preferred, error)
        return sock.bind_to_random_port(f"tcp://{self._bind_host}", low, high + 1, max_tries=200)

    def _close(self, kernel_id: int) -> None:
        relay = self._relays.pop(kernel_id, None)
        if relay is not None:
            self._close_sockets(relay)
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        self._snapshot = {k: dict(r.ports) for k, r in self._relays.items()}

    def _close_sockets(self, relay: _Relay) -> None:
        for sock in relay.sockets:
            if sock in self._peer:
                self._poller.unregister(sock)
                del self._peer[sock]
            sock.close(linger=0)

    def _close_all(self) -> None:
        for kernel_id in list(self._relays):
            self._close(kernel_id)
