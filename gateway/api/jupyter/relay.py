"""The kernel websocket (``/api/kernels/{id}/channels``): one relay per websocket connection.

A relay owns its own ``KernelChannels`` to the kernel and copies messages both ways: the client's frames are
decoded, checked and signed by the gateway; the kernel's messages are verified and framed for the client.

It follows the kernel's container: when the container is replaced the relay reconnects to the new one, and when
that replacement is a recovery (the kernel died, or ignored an interrupt at a deadline) the client first gets an
IOPub ``status: restarting``, as jupyter_server sends it (not for a restart the user asked for: Jupyter clients
read ``restarting`` as a crash). When the kernel is shut down the client gets ``status: dead`` and the websocket is
closed. Kernel-wide status messages keep the kernel's ``execution_state`` and ``last_activity`` current.

Executions share the kernel's queue with the seed API: an ``execute_request`` is forwarded when no seed API run
or file transfer holds the kernel, and is tracked until its reply (or idle) comes, so seed API runs wait for it,
culling sees the kernel busy, and a seed API deadline never interrupts a websocket's code. Its ``%pip install``
lines are fetched first, as for a seed API run (issue 13); a refusal becomes the execution's error, raised by the
kernel (the client sees an ordinary error reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.session import msg_header
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.kernels.kernel import Kernel, KernelEvent
from gateway.notebook.outputs import Output
from gateway.protocol.channels import KernelChannels
from gateway.protocol.wire import BadFrame, decode, encode
from gateway.security.audit import AuditLog, code_fields
from gateway.security.keys import Caller
from gateway.settings import Settings

log = logging.getLogger(__name__)

_OUTGOING_FRAMES = 256  # frames queued for a slow client; past it IOPub waits (and ZMQ drops for this client)
_CLOSE_INVALID = 1007  # websocket close code: the client sent a frame that is not a Jupyter message
_CLOSE_RECONNECT = 1012  # websocket close code "service restart": the kernel moved to another replica
_CLOSE_TOO_BIG = 1009  # websocket close code: message too big (code past max_code_bytes)


#: Fetch what code's ``%pip install`` lines ask for (caller holds the kernel's lock): None, or the refusal.
Prefetch = Callable[[Kernel, str], Awaitable[Output | None]]


class Relays:
    """The open kernel websockets of this gateway, by kernel (for the models' ``connections``)."""

    def __init__(
        self, settings: Settings, context: zmq.asyncio.Context, audit: AuditLog | None = None,
        prefetch: Prefetch | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.prefetch = prefetch  # KernelService.prefetch: packages on demand (issue 13)
        self.audit = audit  # execute requests get an audit line each, as seed API runs do
        self.context = context  # the kernel connections' context: one I/O thread
        self._open: dict[int, set[ChannelsRelay]] = {}

    def connections(self, kernel: Kernel) -> int:
        return len(self._open.get(kernel.id, ()))

    def add(self, relay: ChannelsRelay) -> None:
        self._open.setdefault(relay.kernel.id, set()).add(relay)

    def discard(self, relay: ChannelsRelay) -> None:
        relays = self._open.get(relay.kernel.id)
        if relays is not None:
            relays.discard(relay)
            if not relays:
                del self._open[relay.kernel.id]


class ChannelsRelay:
    """Relays one accepted websocket to one kernel until the client leaves or the kernel is shut down."""

    def __init__(
        self, websocket: WebSocket, kernel: Kernel, relays: Relays, protocol: str | None, caller: Caller
    ) -> None:
        self.websocket = websocket
        self.caller = caller
        self.kernel = kernel
        self.relays = relays
        self.protocol = protocol
        self.settings = relays.settings
        self._channels: KernelChannels | None = None
        self._attached = asyncio.Event()
        self._attach_task: asyncio.Task[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._outgoing: asyncio.Queue[str | bytes] = asyncio.Queue(_OUTGOING_FRAMES)
        self._kernel_gone = asyncio.get_running_loop().create_future()
        self._session_id = uuid.uuid4().hex  # the session of the gateway's own status messages
        self._executing: set[str] = set()  # this websocket's execute requests the kernel has not finished
        self._told_restarting = False
        self._moved = False

    async def run(self) -> None:
        """Serve the websocket (already accepted) until either side ends it."""
        self.relays.add(self)
        self.kernel.listeners.add(self._on_kernel_event)
        writer = asyncio.create_task(self._write_client())
        reader = asyncio.create_task(self._read_client())
        try:
            if self.kernel.connection_info is not None:
                self._start_attach()
            await asyncio.wait({writer, reader, self._kernel_gone}, return_when=asyncio.FIRST_COMPLETED)
            if self._kernel_gone.done():
                await self._drain(writer)
                if self._moved:
                    await self._close(_CLOSE_RECONNECT, "kernel moved to another gateway replica: reconnect")
                else:
                    await self._close(1000, "kernel shut down")
            elif reader.done() and (close := reader.result()) is not None:
                await self._close(*close)
        finally:
            self.kernel.listeners.discard(self._on_kernel_event)
            self.relays.discard(self)
            for task in (reader, writer):
                task.cancel()
            self._detach()

    # --- client -> kernel -----------------------------------------------------------------------------------

    async def _read_client(self) -> tuple[int, str] | None:
        """Relay the client's frames; returns a close code and reason for a bad frame, None when it left."""
        while True:
            try:
                event = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return None
            if event["type"] == "websocket.disconnect":
                return None
            frame = event.get("text") if event.get("text") is not None else event.get("bytes")
            if frame is None:
                continue
            try:
                channel, msg = decode(frame, self.protocol)
            except BadFrame as error:
                log.warning("kernel %d websocket: closing on a bad frame: %s", self.kernel.id, error)
                return _CLOSE_INVALID, f"not a Jupyter message: {error}"[:120]
            if channel == "iopub" or (channel == "stdin" and not self.settings.jupyter_allow_stdin):
                log.debug("kernel %d websocket: dropped a client message on %s", self.kernel.id, channel)
                continue
            if msg["header"]["msg_type"] == "execute_request":
                if refusal := self._check_execute(msg):
                    return refusal
                await self._execute(msg)
                continue
            await self._to_kernel(channel, msg)

    def _check_execute(self, msg: dict[str, Any]) -> tuple[int, str] | None:
        """Apply the seed API's rules to an execute request: code size cap, stdin policy, audit line."""
        content = msg["content"]
        code = content.get("code")
        if not isinstance(code, str):
            return _CLOSE_INVALID, "execute_request without a string 'code'"
        fields = code_fields(code)
        if fields["code_bytes"] > self.settings.max_code_bytes:
            return _CLOSE_TOO_BIG, f"code too large: {fields['code_bytes']} bytes, limit {self.settings.max_code_bytes}"
        if not self.settings.jupyter_allow_stdin:
            content["allow_stdin"] = False  # else input() would wait for a reply nobody relays
        if self.relays.audit is not None:
            self.relays.audit.record(
                key_id=self.caller.key_id, action="WEBSOCKET execute_request", kernel=self.kernel.id, **fields,
                outcome="relayed",
            )  # fmt: skip
        return None

    async def _execute(self, msg: dict[str, Any]) -> None:
        """Forward an execute request in the kernel's queue: once no seed API work holds the kernel."""
        while True:
            await self._attached.wait()  # never wait for the lock while a recovery (which takes it) is pending
            async with self.kernel.lock:
                if not self._attached.is_set():
                    continue
                await self._prefetch(msg["content"])
                msg_id = msg["header"]["msg_id"]
                self._executing.add(msg_id)
                self.kernel.begin_external(msg_id)
                await self._to_kernel("shell", msg)
                return

    async def _prefetch(self, content: dict[str, Any]) -> None:
        """Fetch what the code's ``%pip install`` lines ask for; a refusal replaces the code by one that raises it."""
        if self.relays.prefetch is None or "pip" not in content["code"]:
            return
        refused = await self.relays.prefetch(self.kernel, content["code"])
        if refused is not None:
            ename, evalue = str(refused.get("ename", "PackageInstallError")), str(refused.get("evalue", ""))
            content["code"] = f"raise type({ename!r}, (Exception,), {{}})({evalue!r}) from None"

    def _finished(self, msg_id: Any) -> None:
        if msg_id in self._executing:
            self._executing.discard(msg_id)
            self.kernel.end_external(msg_id)

    def _forget_executing(self) -> None:
        for msg_id in list(self._executing):
            self._finished(msg_id)

    async def _to_kernel(self, channel: str, msg: dict[str, Any]) -> None:
        await self._attached.wait()  # while the kernel restarts, the client's frames wait here
        channels = self._channels
        if channels is None:
            return
        self.kernel.touch()
        try:
            await channels.send(channel, msg)
        except zmq.ZMQError as error:  # its container was replaced meanwhile
            log.info("kernel %d websocket: message lost in a restart: %s", self.kernel.id, error)

    # --- kernel -> client -----------------------------------------------------------------------------------

    async def _pump(self, channels: KernelChannels) -> None:
        async for channel, msg in channels.messages():
            if channel == "iopub" and msg["msg_type"] == "status":
                state = msg["content"].get("execution_state")
                self.kernel.observe_execution_state(state)
                if state == "idle":
                    self._finished(msg["parent_header"].get("msg_id"))
            elif channel == "shell" and msg["msg_type"] == "execute_reply":
                self._finished(msg["parent_header"].get("msg_id"))
            self.kernel.touch()
            await self._outgoing.put(encode(channel, msg, self.protocol))

    async def _write_client(self) -> None:
        while True:
            frame = await self._outgoing.get()
            if isinstance(frame, str):
                await self.websocket.send_text(frame)
            else:
                await self.websocket.send_bytes(frame)

    def _send_status(self, execution_state: str) -> None:
        """Tell the client the kernel's state, as jupyter_server does around restarts."""
        header = msg_header(uuid.uuid4().hex, "status", "jupycell", self._session_id)
        msg = {"header": header, "parent_header": {}, "metadata": {}, "content": {"execution_state": execution_state}}
        with contextlib.suppress(asyncio.QueueFull):
            self._outgoing.put_nowait(encode("iopub", msg, self.protocol))

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Give queued frames a moment to reach the client before it is closed."""
        for _ in range(100):
            if self._outgoing.empty() or writer.done():
                return
            await asyncio.sleep(0.01)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.websocket.close(code, reason)

    # --- following the kernel's container ---------------------------------------------------------------------

    def _on_kernel_event(self, kernel: Kernel, event: KernelEvent) -> None:
        """Called by the core, on the loop, as the kernel's container comes and goes."""
        if event is KernelEvent.STARTED:
            self._detach()
            self._told_restarting = False
            self._start_attach()
        elif event is KernelEvent.STOPPED:
            self._detach()
        elif event is KernelEvent.DIED:
            self._detach()
            if not self._told_restarting:
                self._told_restarting = True
                self._send_status("restarting")
        elif event is KernelEvent.SHUT_DOWN and not self._kernel_gone.done():
            self._detach()
            self._send_status("dead")
            self._kernel_gone.set_result(None)
        elif event is KernelEvent.MOVED and not self._kernel_gone.done():  # issue 11: reconnecting reaches the owner
            self._detach()
            self._moved = True
            self._kernel_gone.set_result(None)

    def _start_attach(self) -> None:
        self._attach_task = asyncio.create_task(self._attach())

    async def _attach(self) -> None:
        info = self.kernel.connection_info
        if info is None:
            return
        channels = KernelChannels(
            self.relays.context,
            info,
            stdin=self.settings.jupyter_allow_stdin,
            max_message_bytes=self.settings.max_message_bytes,
        )
        self._channels = channels
        if not await channels.wait_iopub(self.settings.kernel_start_timeout):
            log.warning("kernel %d websocket: IOPub did not deliver; relaying anyway", self.kernel.id)
        self._pump_task = asyncio.create_task(self._pump(channels))
        self._attached.set()

    def _detach(self) -> None:
        self._attached.clear()
        self._forget_executing()
        for task in (self._attach_task, self._pump_task):
            if task is not None:
                task.cancel()
        self._attach_task = self._pump_task = None
        if self._channels is not None:
            self._channels.close()
            self._channels = None
