"""One websocket's own ZMQ connection set to a kernel: shell, control, IOPub, and stdin when allowed.

Separate from the seed API's ``KernelClient``: shell and control are DEALERs to the kernel's ROUTERs and IOPub is
a SUB to its PUB, so any number of these connect to one kernel side by side. Messages to the kernel are signed
here with the kernel's key (a client never sees it and never signs); messages from the kernel are verified here,
and one that is unsigned, wrongly signed, replayed or not JSON is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import Session

from gateway.kernels.ports import ConnectionInfo
from gateway.protocol.curve import kernel_socket

log = logging.getLogger(__name__)


def _url(info: ConnectionInfo, channel: str) -> str:
    port = dict(info)[f"{channel}_port"]
    if info["transport"] == "tcp":
        return f"tcp://{info['ip']}:{port}"
    return f"{info['transport']}://{info['ip']}-{port}"


class KernelChannels:
    """Connected on creation; ``close()`` when done. ``info`` is the connection info as the gateway sees it."""

    def __init__(
        self, context: zmq.asyncio.Context, info: ConnectionInfo, *, stdin: bool, max_message_bytes: int
    ) -> None:
        self.session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"], check_pid=False)
        identity = f"jupycell-ws-{secrets.token_hex(8)}".encode()  # shell and stdin must share it (input_request)
        kinds = {"shell": zmq.DEALER, "control": zmq.DEALER, "iopub": zmq.SUB}
        if stdin:
            kinds["stdin"] = zmq.DEALER
        self.sockets: dict[str, zmq.asyncio.Socket] = {}
        for channel, kind in kinds.items():
            socket = kernel_socket(context, kind, info)  # Curve for a kernel relayed by a node agent
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            if kind == zmq.DEALER:
                socket.setsockopt(zmq.IDENTITY, identity)
            else:
                socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.connect(_url(info, channel))
            self.sockets[channel] = socket
        self._channel_of = {socket: channel for channel, socket in self.sockets.items()}
        self._poller = zmq.asyncio.Poller()
        for socket in self.sockets.values():
            self._poller.register(socket, zmq.POLLIN)
        self._own: set[str] = set()  # msg_ids of our own probes: what answers them is not the client's
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for socket in self.sockets.values():
            socket.close(linger=0)

    async def send(self, channel: str, msg: dict[str, Any]) -> None:
        """Sign ``msg`` (a client's message: header, parent_header, metadata, content, buffers) and send it."""
        frames = self.session.serialize(msg) + [bytes(b) for b in msg.get("buffers") or ()]
        await self.sockets[channel].send_multipart(frames)

    async def _receive(self, timeout: float | None) -> tuple[str, dict[str, Any]] | None:
        """The next verified message from any channel, or None after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - loop.time()) * 1000))
            ready = await self._poller.poll(wait_ms)
            if not ready:
                return None
            for socket, _ in ready:
                frames = await socket.recv_multipart()
                channel = self._channel_of[socket]
                try:
                    _, signed = self.session.feed_identities(frames)
                    msg = self.session.deserialize(signed)
                except Exception as error:  # anything the kernel sends is untrusted
                    log.warning("dropped a message on %s that failed verification: %s", channel, error)
                    continue
                return channel, msg

    async def messages(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Verified messages from the kernel, as ``(channel, message)``, until closed (replies to our own
        probes are left out)."""
        while not self.closed:
            received = await self._receive(None)
            if received is not None and received[1]["parent_header"].get("msg_id") not in self._own:
                yield received

    async def wait_iopub(self, timeout: float) -> bool:
        """Make sure IOPub delivers before relaying (ZMQ slow joiner): probe with ``kernel_info`` requests until
        one's status arrives on IOPub; False if none did within ``timeout``. Call before relaying the client's
        frames: what arrives meanwhile (other clients' broadcasts) is not relayed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            probe = self.session.msg("kernel_info_request", {})
            self._own.add(probe["header"]["msg_id"])
            await self.send("shell", probe)
            probe_deadline = min(deadline, loop.time() + 0.25)
            while (left := probe_deadline - loop.time()) > 0:
                received = await self._receive(left)
                if received is None:
                    break
                channel, msg = received
                if channel == "iopub" and msg["parent_header"].get("msg_id") == probe["header"]["msg_id"]:
                    return True
        return False
