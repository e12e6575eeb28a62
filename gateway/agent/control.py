"""The agent's control socket: each request parsed, answered in its own task, and the answer (or the error it
raised, as an error reply) sent back to its sender. Never ends on a bad request or a failing handler.

Long requests (kernel starts, package fetches: seconds each, more under gVisor) never hold up the short ones behind
them on the socket (a seal, a status, a ping): each kind has its own ``max_concurrent`` slots, and long ones beyond
theirs wait in memory, at most ``max_long_waiting`` of them (then: ``capacity``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import zmq
import zmq.asyncio

from gateway.agent.protocol import (
    AnyRequest,
    BadRequest,
    ErrorType,
    StartRequest,
    error_reply,
    ok_reply,
    parse_request,
)
from gateway.errors import KernelStartFailed, SandboxUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[AnyRequest], Awaitable[dict[str, Any]]]


class AgentError(Exception):
    """A refusal with its error type, answered as such."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.type = error_type


def is_long(request: AnyRequest) -> bool:
    """Requests that take seconds: a kernel's container started, packages fetched."""
    return isinstance(request, StartRequest) or request.op == "packages_fetch"


class ControlServer:
    """Serves ``handle`` on a ROUTER socket; ``tasks`` holds the answers in progress (the agent cancels them)."""

    def __init__(self, handle: Handler, *, max_concurrent: int, max_long_waiting: int, tasks: set[Any]) -> None:
        self.handle = handle
        self.max_long_waiting = max_long_waiting
        self.tasks = tasks
        self._short = asyncio.Semaphore(max_concurrent)
        self._long = asyncio.Semaphore(max_concurrent)
        self._long_waiting = 0

    async def serve(self, control: zmq.asyncio.Socket) -> None:
        """Until cancelled."""
        while True:
            try:
                frames = await control.recv_multipart()
            except zmq.ZMQError as error:  # e.g. an oversized message: the socket drops it
                log.debug("control receive failed: %s", error)
                continue
            if len(frames) != 2:  # [client identity, request]; anything else is junk with nowhere sane to answer
                if len(frames) > 1:
                    await reply(control, frames[0], error_reply(None, "bad_request", "send one frame"))
                continue
            identity = frames[0]
            try:
                request = parse_request(frames[1])
            except BadRequest as error:
                await reply(control, identity, error_reply(error.request_id, "bad_request", str(error)))
                continue
            if not is_long(request):
                await self._short.acquire()
                self._spawn(control, identity, request, None, self._short.release)
            elif self._long_waiting >= self.max_long_waiting:
                refusal = error_reply(request.id, "capacity", "this node has too many kernel starts under way")
                await reply(control, identity, refusal)
            else:
                self._long_waiting += 1
                self._spawn(control, identity, request, self._long, self._long_done)

    def _long_done(self) -> None:
        self._long_waiting -= 1

    def _spawn(
        self, control: zmq.asyncio.Socket, identity: bytes, request: AnyRequest, slots: asyncio.Semaphore | None,
        done: Callable[[], None],
    ) -> None:  # fmt: skip
        task = asyncio.create_task(self._answer(control, identity, request, slots))
        self.tasks.add(task)
        task.add_done_callback(lambda t: (self.tasks.discard(t), done()))

    async def _answer(
        self, control: zmq.asyncio.Socket, identity: bytes, request: AnyRequest, slots: asyncio.Semaphore | None
    ) -> None:
        try:
            async with slots if slots is not None else contextlib.nullcontext():
                answer = ok_reply(request.id, await self.handle(request))
        except AgentError as error:
            answer = error_reply(request.id, error.type, str(error))
        except KernelStartFailed as error:
            answer = error_reply(request.id, "start_failed", str(error))
        except SandboxUnavailable as error:
            answer = error_reply(request.id, "unavailable", str(error))
        except Exception as error:  # never let a request end the agent
            log.exception("control request failed")
            answer = error_reply(request.id, "internal", f"{type(error).__name__}: {error}")
        await reply(control, identity, answer)


async def reply(control: zmq.asyncio.Socket, identity: bytes, message: bytes) -> None:
    """Send without waiting: a client that is gone or not reading has its reply dropped."""
    try:
        await control.send_multipart([identity, message], flags=zmq.NOBLOCK)
    except zmq.ZMQError as error:
        log.debug("control reply dropped: %s", error)
