"""One ZMQ connection per kernel: readiness, execution with a deadline, interrupt.

Messages are built, signed and checked by jupyter_client's client and session; its sockets never block and are
read on the event loop through ``gateway.protocol.inbox`` (no future per message). Everything the kernel sends is
treated as untrusted: messages are signature-checked by the session, capped in size on the socket, and matched to
requests by ``msg_id``. A run ends when IOPub reports the kernel ``idle`` for it. Should that message be lost
(dropped past a size cap or a high-water mark during a flood), the run still ends without waiting for its deadline:
once its shell ``execute_reply`` has come, a ``kernel_info`` request is sent as a sentinel. The kernel handles shell
requests in order and publishes on IOPub in order, so IOPub news of the sentinel means everything the run published
that was going to arrive has arrived. No timing is involved: a busy machine only makes it slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.blocking.client import BlockingKernelClient

from gateway.agent.client import CurveBlockingKernelClient
from gateway.errors import KernelCodeError, KernelGone, KernelUnresponsive
from gateway.kernels.ports import ConnectionInfo
from gateway.notebook.outputs import Output, OutputCollector, output_from_message
from gateway.protocol.curve import curve_keys
from gateway.protocol.inbox import Inbox, KernelContext
from gateway.protocol.session import DatelessSession
from gateway.protocol.socket_budget import allow_sockets

log = logging.getLogger(__name__)

#: Messages read in a row before giving other tasks a turn: a kernel flooding its sockets cannot stall the loop.
_FAIRNESS_BATCH = 64
#: After the execute_reply, how long to wait for the run's idle before sending the sentinel (most runs need none).
_SENTINEL_AFTER = 0.05
#: How often an execute request the kernel aborted unrun (see ``execute``) is sent again.
_ABORT_RETRIES = 3
#: After an interrupt request at the deadline, how long its acknowledgement may take before a SIGINT goes through
#: the engine instead. An acknowledged request has already signalled the kernel, which then gets no second SIGINT:
#: one landing while the first is handled would cut the cell's own cleanup or its traceback short.
_ESCALATE_AFTER = 1.0

__all__ = ["Execution", "KernelClient", "KernelCodeError", "KernelGone", "KernelUnresponsive", "ZmqConnector"]


@dataclass
class Execution:
    """What one execute request produced."""

    status: str  # "ok" | "error" | "timeout" (interrupted at the deadline, kernel state kept)
    execution_count: int | None
    outputs: list[Output]
    truncated: bool = False


class ZmqConnector:
    """Makes ``KernelClient`` connections; owns the one ZMQ context (so one I/O thread) they all share.

    ``context`` (``zmq.asyncio``) is for the websocket relays; the kernel connections' sockets come from a shadow
    of it that makes plain, never-blocking sockets, read through ``gateway.protocol.inbox``."""

    def __init__(self, max_message_bytes: int, max_kernels: int = 0) -> None:
        self.max_message_bytes = max_message_bytes
        self.context = zmq.asyncio.Context()
        self.kernels = KernelContext.shadow(self.context.underlying)
        # Three sockets per kernel connection, as many again for the warm pool's and the websockets' connections.
        allow_sockets(self.context, 6 * max_kernels + 256)
        for context in (self.context, self.kernels):  # defaults for each new socket (kept per context object)
            context.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)  # a kernel cannot make the gateway buffer more
            context.setsockopt(zmq.LINGER, 0)
            context.setsockopt(zmq.RECONNECT_IVL, 20)  # find a just-started kernel's sockets quickly

    def connect(self, connection_info: ConnectionInfo) -> KernelClient:
        return KernelClient(connection_info, self.kernels)

    def close(self) -> None:
        for socket in list(self.kernels._sockets):  # the shadow's own sockets; the context is terminated once
            if not socket.closed:
                socket.close(linger=0)
        self.context.destroy(linger=0)


class KernelClient:
    """A connection to one kernel's shell, IOPub and control channels (no stdin: ``input()`` fails at once)."""

    def __init__(self, connection_info: ConnectionInfo, context: KernelContext) -> None:
        self._client = _client_for(connection_info, context)
        self._client.load_connection_info(connection_info)  # type: ignore[arg-type]
        self._client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        loop = asyncio.get_running_loop()
        self.died: asyncio.Future[str] = loop.create_future()
        self.dropped = 0  # messages from the kernel that were not valid and were ignored
        self._received = 0
        # jupyter_client's channels, looked up once (each access is a property and a traitlets read)
        self._shell, self._iopub, self._control = (
            self._client.shell_channel,
            self._client.iopub_channel,
            self._client.control_channel,
        )
        self._inboxes = {channel: Inbox(channel.socket, loop) for channel in (self._shell, self._iopub, self._control)}

    def close(self) -> None:
        for inbox in self._inboxes.values():
            inbox.close()
        self._client.stop_channels()

    def mark_dead(self, cause: str) -> None:
        """Called when the container died: wakes whoever waits on this kernel."""
        if not self.died.done():
            self.died.set_result(cause)

    # --- receiving ----------------------------------------------------------------------------------------

    async def _next(
        self,
        channel: Any,
        timeout: float,
        wake: asyncio.Future[Any] | None = None,
    ) -> dict[str, Any] | None:
        """The next well-formed message from a channel, or None after ``timeout`` seconds or once ``wake`` is done;
        raises KernelGone.

        Whatever the kernel sends is untrusted: frames that do not decode (garbage, bad signature, not JSON,
        nested too deep) or that decode to the wrong shapes are dropped and counted in ``dropped``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._received += 1
            if self._received % _FAIRNESS_BATCH == 0:
                await asyncio.sleep(0)
            try:
                msg = await self._receive(channel, deadline - loop.time(), wake)
            except (KernelGone, asyncio.CancelledError):
                raise
            except Exception as error:  # anything a hostile message can make the decoder raise
                self._drop(f"undecodable ({type(error).__name__})")
                continue
            if msg is None or _well_formed(msg):
                return msg
            self._drop("malformed")

    def _drop(self, why: str) -> None:
        self.dropped += 1
        if self.dropped in (1, 10, 100, 1000) or self.dropped % 10000 == 0:
            log.warning("dropped %d bad messages from a kernel so far (latest: %s)", self.dropped, why)

    async def _receive(
        self,
        channel: Any,
        timeout: float,
        wake: asyncio.Future[Any] | None = None,
    ) -> dict[str, Any] | None:
        """The next message of ``channel`` (decoded by its session, which checks the signature), or None after
        ``timeout`` seconds or once ``wake`` is done; raises KernelGone.

        A message already queued costs one non-blocking receive; only when none is queued does this wait on the
        channel's ``Inbox`` (a future settled by its reader callback), the kernel's death, ``wake`` and a timer."""
        socket = channel.socket
        if socket is None or socket.closed:  # closed under the reader (the gateway let go of it): nothing comes
            await asyncio.wait({self.died} if wake is None else {self.died, wake}, timeout=max(timeout, 0))
            if self.died.done():
                raise KernelGone(self.died.result())
            return None
        inbox = self._inboxes[channel]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if (frames := inbox.take()) is not None:
                return _decode(channel, frames)
            if self.died.done():
                raise KernelGone(self.died.result())
            if deadline <= loop.time() or (wake is not None and wake.done()) or socket.closed:
                return None
            await inbox.wait(self.died, wake, deadline)

    async def _reply(self, msg_id: str | set[str], timeout: float, *, control: bool = False) -> dict[str, Any] | None:
        """The shell (or ``control``) reply to ``msg_id`` (or to any of a set of ids; other replies are dropped),
        or None on timeout."""
        wanted = {msg_id} if isinstance(msg_id, str) else msg_id
        channel = self._control if control else self._shell
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            msg = await self._next(channel, deadline - asyncio.get_running_loop().time())
            if msg is None or msg["parent_header"].get("msg_id") in wanted:
                return msg

    async def _until_idle(
        self,
        msg_id: str | set[str],
        deadline: float,
        collector: OutputCollector | None,
        reply: asyncio.Future[dict[str, Any] | None] | None = None,
    ) -> tuple[bool, int | None]:
        """Read IOPub until the kernel reports idle for ``msg_id`` (or any of a set of ids); collect outputs.

        With ``reply`` (the shell reply being awaited): once it has come and the idle has not, a ``kernel_info``
        sentinel is sent; IOPub news of the sentinel ends the run too (its idle was lost).
        Returns (finished, execution count)."""
        loop = asyncio.get_running_loop()
        wanted = {msg_id} if isinstance(msg_id, str) else msg_id
        execution_count = None
        sentinel_at: float | None = None  # when to send the sentinel, once the reply has come
        sentinel: str | None = None
        while True:
            if sentinel_at is None and _answered(reply):
                sentinel_at = loop.time() + _SENTINEL_AFTER
            if sentinel is None and sentinel_at is not None and loop.time() >= sentinel_at:
                with self._sending(self._shell):
                    sentinel = self._client.kernel_info()
            end = deadline if sentinel_at is None or sentinel is not None else min(deadline, sentinel_at)
            wake = reply if reply is not None and not reply.done() else None
            msg = await self._next(self._iopub, end - loop.time(), wake)
            if msg is None:
                if loop.time() < deadline:
                    continue  # woken by the reply, or time to send the sentinel
                return False, execution_count
            parent = msg["parent_header"].get("msg_id")
            if sentinel is not None and parent == sentinel:
                log.info("a run ended on its execute_reply and a sentinel: its IOPub idle was lost")
                return True, execution_count
            if parent not in wanted:
                continue
            msg_type, content = msg["msg_type"], msg["content"]
            if msg_type == "status":
                if content.get("execution_state") == "idle":
                    return True, execution_count
            elif msg_type == "execute_input":
                execution_count = _count(content.get("execution_count"))
            elif collector is not None:
                try:
                    if msg_type == "clear_output":
                        collector.clear()
                    elif (output := output_from_message(msg_type, content)) is not None:
                        collector.add(output)
                except (TypeError, ValueError, AttributeError):  # a signed message with nonsense content
                    self._drop("bad output content")

    @contextlib.contextmanager
    def _sending(self, channel: Any) -> Iterator[None]:
        """Around a send on ``channel``: a message that cannot be queued at once (a full queue, a relay that is
        gone) is an unresponsive kernel; afterwards the socket is checked for its readers (the send may have
        consumed the signal of a message that came meanwhile: see ``gateway.protocol.inbox``)."""
        try:
            yield
        except zmq.Again:
            raise KernelUnresponsive("its connection did not take the message (the node may be unreachable)") from None
        finally:
            if (inbox := self._inboxes.get(channel)) is not None:
                inbox.poke()

    # --- requests -----------------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> None:
        """Return once the kernel answers ``kernel_info`` on shell *and* its status reaches us on IOPub.

        The second half matters: a just-connected IOPub socket can miss messages (ZMQ slow joiner), and an
        execute would then wait for an ``idle`` that was already sent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        asked: set[str] = set()  # a slow kernel may answer an earlier request: any answer will do
        patience = 0.02  # for IOPub: a status published before our subscription took is never seen, so ask again
        while loop.time() < deadline:
            try:
                with self._sending(self._shell):
                    asked.add(self._client.kernel_info())
            except KernelUnresponsive:  # the message could not be queued (a relay that is gone): ask again
                await asyncio.sleep(0.02)
                continue
            if await self._reply(asked, min(0.25, deadline - loop.time())) is None:
                continue
            idle, _ = await self._until_idle(asked, min(loop.time() + patience, deadline), None)
            if idle:
                return
            patience = min(0.25, patience * 2)
        raise KernelUnresponsive(f"kernel did not answer within {timeout:g} s")

    async def execute(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        interrupt_grace: float,
        escalate: Callable[[], Awaitable[Any]] | None = None,
    ) -> Execution:
        """Run ``code``. At the deadline: an interrupt request; if the kernel is still busy shortly after,
        ``escalate()`` (a SIGINT through the engine); then ``interrupt_grace`` seconds for it to stop.

        Raises KernelUnresponsive if it is still busy after that (the caller replaces the kernel), and
        KernelGone if its container dies meanwhile.
        """
        for _ in range(_ABORT_RETRIES):
            execution = await self._execute_once(code, timeout, collector, interrupt_grace, escalate)
            if execution.status != "aborted":
                return execution
            # The kernel aborted the request unrun: it was still aborting requests queued behind another client's
            # failed execution (stop_on_error). Nothing of it ran; send it again.
            log.info("an execute request was aborted by the kernel before it ran; sending it again")
        return Execution("error", None, collector.outputs(), collector.truncated)

    async def _execute_once(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        interrupt_grace: float,
        escalate: Callable[[], Awaitable[Any]] | None,
    ) -> Execution:
        loop = asyncio.get_running_loop()
        with self._sending(self._shell):
            msg_id = self._client.execute(code, store_history=True, allow_stdin=False, stop_on_error=True)
        reply = asyncio.ensure_future(self._reply(msg_id, timeout + _ESCALATE_AFTER + interrupt_grace))
        try:
            finished, count = await self._until_idle(msg_id, loop.time() + timeout, collector, reply)
            if not finished:
                finished, later = await self._interrupt(msg_id, collector, reply, interrupt_grace, escalate)
                if not finished:
                    raise KernelUnresponsive(f"still busy {interrupt_grace:g} s after an interrupt")
                return Execution("timeout", count or later, collector.outputs(), collector.truncated)
            # The reply is sent before the idle, so it is usually here already: no timer, no shield.
            answer = reply.result() if reply.done() else await asyncio.wait_for(asyncio.shield(reply), interrupt_grace)
        except TimeoutError:
            answer = None
        finally:
            if not reply.done():
                reply.cancel()
            elif not reply.cancelled():
                reply.exception()  # retrieved: a death is reported through the IOPub side
        reply_status = answer["content"].get("status") if answer is not None else None
        if reply_status == "aborted" and count is None and not collector.outputs():
            return Execution("aborted", None, [], False)
        status = "ok" if reply_status == "ok" else "error"
        if answer is not None:
            count = _count(answer["content"].get("execution_count")) or count
        return Execution(status, count, collector.outputs(), collector.truncated)

    async def _interrupt(
        self,
        msg_id: str,
        collector: OutputCollector,
        reply: asyncio.Future[dict[str, Any] | None],
        interrupt_grace: float,
        escalate: Callable[[], Awaitable[Any]] | None,
    ) -> tuple[bool, int | None]:
        """Interrupt the run of ``msg_id`` exactly once: an interrupt request, and a SIGINT through the engine only
        if the kernel has neither acknowledged the request nor finished within ``_ESCALATE_AFTER``. Then
        ``interrupt_grace`` seconds to finish. Returns (finished, execution count) as ``_until_idle`` does."""
        loop = asyncio.get_running_loop()
        acknowledged = asyncio.ensure_future(self._reply(self._request_interrupt(), _ESCALATE_AFTER, control=True))
        try:
            finished, count = await self._until_idle(msg_id, loop.time() + _ESCALATE_AFTER, collector, reply)
            if not finished and not _answered(acknowledged) and escalate is not None:
                log.info("kernel did not acknowledge an interrupt request: sending SIGINT through the engine")
                await escalate()
            if not finished:
                finished, count = await self._until_idle(msg_id, loop.time() + interrupt_grace, collector, reply)
            return finished, count
        finally:
            if not acknowledged.cancel() and not acknowledged.cancelled():
                acknowledged.exception()  # retrieved: a death is reported through the IOPub side

    async def evaluate(self, expression: str, timeout: float) -> str:
        """The ``text/plain`` value of ``expression``, evaluated silently: no history, no execution count, no
        outputs (a ``user_expressions`` entry of an empty, silent execute request).

        Raises KernelCodeError if it raises, KernelUnresponsive without a reply in ``timeout`` seconds.
        """
        with self._sending(self._shell):
            msg_id = self._client.execute(
                "", silent=True, store_history=False, user_expressions={"value": expression}, allow_stdin=False
            )
        reply = await self._reply(msg_id, timeout)
        if reply is None:
            raise KernelUnresponsive(f"no reply within {timeout:g} s")
        content = reply["content"]
        value = content.get("user_expressions", {}).get("value", {}) if content.get("status") == "ok" else content
        if value.get("status") != "ok":
            raise KernelCodeError(str(value.get("ename", "")), str(value.get("evalue", "")))
        return str(value.get("data", {}).get("text/plain", ""))

    async def interrupt(self, acknowledged_within: float = 0.0) -> bool:
        """Ask the kernel to raise KeyboardInterrupt in the running code (control channel, no Docker call).
        True if it acknowledged the request within ``acknowledged_within`` seconds: it has signalled itself."""
        asked = self._request_interrupt()
        return acknowledged_within > 0 and await self._reply(asked, acknowledged_within, control=True) is not None

    def _request_interrupt(self) -> str:
        """Send an interrupt request; its msg_id (the kernel answers on control once it has signalled itself)."""
        msg = self._client.session.msg("interrupt_request", {})
        with self._sending(self._control):
            self._control.send(msg)
        return str(msg["header"]["msg_id"])


def _client_for(connection_info: ConnectionInfo, context: KernelContext) -> BlockingKernelClient:
    """jupyter_client's client; with the gateway's Curve keys when the kernel is relayed by a node agent. Its
    session leaves the messages' dates unparsed (nothing here reads them: see ``gateway.protocol.session``)."""
    keys = curve_keys(connection_info)
    if keys is None:
        return BlockingKernelClient(context=context, session=DatelessSession())
    client = CurveBlockingKernelClient(context=context, session=DatelessSession())
    client.agent_keys = keys
    return client


def _answered(reply: asyncio.Future[dict[str, Any] | None] | None) -> bool:
    """The shell reply has come (not: timed out, failed or cancelled)."""
    return (
        reply is not None
        and reply.done()
        and not reply.cancelled()
        and reply.exception() is None
        and reply.result() is not None
    )


def _decode(channel: Any, frames: list[bytes]) -> dict[str, Any]:
    """A message as jupyter_client's channels decode it: identities split off, signature checked, JSON parsed."""
    _, message = channel.session.feed_identities(frames)
    decoded: dict[str, Any] = channel.session.deserialize(message)
    return decoded


def _well_formed(msg: Any) -> bool:
    """The shapes the gateway relies on: dict header/parent/content and a string message type."""
    return (
        isinstance(msg, dict)
        and isinstance(msg.get("header"), dict)
        and isinstance(msg.get("parent_header"), dict)
        and isinstance(msg.get("content"), dict)
        and isinstance(msg.get("msg_type"), str)
    )


def _count(value: Any) -> int | None:
    """An execution count as the kernel reported it, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else None
