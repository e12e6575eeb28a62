"""Per-kernel relays between a kernel's ``ipc://`` sockets and TCP ports guarded by CurveZMQ.

Frames are relayed unchanged (messages are signed end to end by the kernel and the gateway; the agent cannot
read the HMAC key's use and does not need to): ROUTER (gateway side) to DEALER (kernel side) for shell, control,
stdin and hb, XPUB to XSUB for IOPub. The shell and stdin DEALERs of a kernel share one identity so the kernel's
``input_request`` finds its way back.

Each channel is relayed by libzmq's own proxy (``zmq_proxy_steerable``, in C, the GIL released) in a thread of
its own: no Python work per message, no poll loop shared by every kernel (a kernel flooding its output only keeps
its own channel's thread busy). A kernel cannot block a relay: what it sends goes to a ROUTER or an XPUB, which
drop a message that meets a full queue. What the gateway sends to a kernel waits at most ``_SEND_TIMEOUT_MS``
once ``_HWM`` messages are queued for it (a kernel that stopped reading, or is gone): then that channel's relay
ends, logged. ``open``/``close`` bind and stop sockets and wait for the threads: call them off the event loop.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import zmq

from gateway.agent.keys import Keypair
from gateway.agent.protocol import CHANNELS, ZAP_DOMAIN

log = logging.getLogger(__name__)

#: Kernel channel suffixes of the ipc socket files (``<socket dir>/k-<n>``), as gateway.adapters.docker.sockets writes.
_IPC_SUFFIX = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}
_HWM = 1000  # messages queued per peer before dropping (ZeroMQ's default; the gateway's sockets use it too)
_SEND_TIMEOUT_MS = 1000  # longest a send towards a kernel waits on a full queue before its channel's relay ends


@dataclass
class _Channel:
    """One channel's proxy: its two sockets, the steering socket that stops it, and its thread."""

    front: zmq.Socket[Any]
    back: zmq.Socket[Any]
    steer: zmq.Socket[Any]  # PAIR: TERMINATE stops the proxy
    steered: zmq.Socket[Any]  # the proxy's end of it
    thread: threading.Thread | None = None


@dataclass
class _Relay:
    ports: dict[str, int] = field(default_factory=dict)
    channels: list[_Channel] = field(default_factory=list)
    sockets: list[zmq.Socket[Any]] = field(default_factory=list)  # every socket, for clean-up


class Relays:
    """Every kernel relay of this agent: a C proxy thread per channel. Thread-safe."""

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
        self._snapshot: dict[int, dict[str, int]] = {}  # replaced (never changed) under the lock: read freely
        self._lock = threading.Lock()
        self._running = True

    def open(self, kernel_id: int, ipc_base: str, preferred: dict[str, int] | None = None) -> dict[str, int]:
        """Open the kernel's relay (ipc sockets ``<ipc_base>-<n>``); return its TCP port per channel. Ports in
        ``preferred`` are used when free (a restarted agent keeps its ports, so clients reconnect by
        themselves). Opening an open relay returns its ports."""
        with self._lock:
            if not self._running:
                raise RuntimeError("the relays are stopped")
            if kernel_id in self._relays:
                return dict(self._relays[kernel_id].ports)
            relay = _Relay()
            try:
                self._open(kernel_id, relay, ipc_base, preferred or {})
            except BaseException:
                self._close_relay(relay)
                raise
            self._relays[kernel_id] = relay
            self._take_snapshot()
            return dict(relay.ports)

    def close(self, kernel_id: int) -> None:
        """Close the kernel's relay; closing one that is not open is fine."""
        with self._lock:
            relay = self._relays.pop(kernel_id, None)
            if relay is not None:
                self._take_snapshot()
        if relay is not None:
            self._close_relay(relay)

    def ports(self) -> dict[int, dict[str, int]]:
        """The open relays: kernel id to ports (never waits: safe on the event loop)."""
        return self._snapshot

    def stop(self) -> None:
        with self._lock:
            self._running = False
            relays, self._relays = list(self._relays.values()), {}
            self._take_snapshot()
        for relay in relays:
            self._close_relay(relay)

    # --- one relay ----------------------------------------------------------------------------------------

    def _open(self, kernel_id: int, relay: _Relay, ipc_base: str, preferred: dict[str, int]) -> None:
        identity = b"relay-" + os.urandom(8).hex().encode()
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
            back.sndtimeo = _SEND_TIMEOUT_MS  # towards the kernel: never blocks the proxy for good
            if channel in ("shell", "stdin"):
                back.identity = identity  # the kernel answers input_request to the shell request's sender
            back.connect(f"ipc://{ipc_base}-{_IPC_SUFFIX[channel]}")
            address = f"inproc://relay-{kernel_id}-{channel}-{os.urandom(6).hex()}"
            steered = self._socket(zmq.PAIR, relay)
            steered.bind(address)
            steer = self._socket(zmq.PAIR, relay)
            steer.connect(address)
            relay.channels.append(_Channel(front, back, steer, steered))
        for channel, proxied in zip(CHANNELS, relay.channels, strict=True):
            proxied.thread = threading.Thread(
                target=_proxy, args=(kernel_id, channel, proxied), name=f"relay-{kernel_id}-{channel}", daemon=True
            )
            proxied.thread.start()  # the sockets move to that thread (Thread.start is a full memory barrier)

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

    def _take_snapshot(self) -> None:
        self._snapshot = {k: dict(r.ports) for k, r in self._relays.items()}

    @staticmethod
    def _close_relay(relay: _Relay) -> None:
        """Stop the relay's proxies, wait for their threads (the sockets come back), close every socket."""
        for proxied in relay.channels:
            if proxied.thread is not None and proxied.thread.is_alive():
                try:
                    proxied.steer.send(b"TERMINATE")
                except zmq.ZMQError as error:
                    log.warning("could not stop a relay proxy: %s", error)
        for proxied in relay.channels:
            if proxied.thread is not None:
                proxied.thread.join(10)
                if proxied.thread.is_alive():  # never seen: its sockets stay open rather than used by two threads
                    log.error("relay thread %s did not stop; its sockets are left open", proxied.thread.name)
                    return
        for sock in relay.sockets:
            sock.close(linger=0)


def _proxy(kernel_id: int, channel: str, proxied: _Channel) -> None:
    """Run one channel's proxy until TERMINATE (or an error: logged, the channel's relay ends)."""
    try:
        zmq.proxy_steerable(proxied.front, proxied.back, None, proxied.steered)
    except zmq.ZMQError as error:
        if error.errno != zmq.ETERM:
            log.warning("relay of kernel %d, channel %s, ended: %s", kernel_id, channel, error)
