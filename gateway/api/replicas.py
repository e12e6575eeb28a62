"""Issue 11: any replica serves any request. An ASGI middleware (inside the security gate) finds the kernel a
request names and, when another live replica serves it, forwards the request there unchanged: HTTP responses are
streamed back as they come (SSE included), a kernel websocket is relayed frame by frame. Everything else (this
replica's kernels, kernels adopted from a dead replica, requests naming no kernel) goes to the app.

The kernel is named by the path (``/kernels/{id}/...``, ``/api/kernels/{id}/...``), the query (``kernel_id=``),
for ``POST /cell`` and ``POST /cell/stream`` the JSON body's ``kernel_id``, and for an MCP tool call (``POST /mcp``,
stateless) its ``kernel_id`` argument. A forwarded request carries ``x-jupycell-forwarded-by``: it is never
forwarded again (no loops while a kernel changes hands).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gateway.api.errors import status_of
from gateway.errors import JupyCellError, ReplicaUnreachable

log = logging.getLogger(__name__)

FORWARDED_BY = b"x-jupycell-forwarded-by"
_KERNEL_PATH = re.compile(r"^/(?:api/)?kernels/([^/]+)")
_MCP_PATHS = frozenset({"/mcp", "/mcp/"})
_QUERY_PATHS = frozenset({"/cell_outputs"})
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"host",
     b"proxy-authorization", b"proxy-connection"}
)  # fmt: skip
_WS_HEADERS = frozenset({b"authorization", b"cookie", b"origin", b"user-agent"})


class ReplicaForwarding:
    """Sends requests for kernels served by another live replica to that replica."""

    def __init__(self, app: ASGIApp, *, replica_id: str, lease_seconds: float) -> None:
        self.app = app
        self.replica_id = replica_id.encode()
        self.retry_after = str(int(lease_seconds) + 1).encode()
        self.owner_check_interval = lease_seconds / 3
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        body: bytes | None = None
        ref = _kernel_in_path_or_query(scope)
        in_body = _BODY_PATHS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if ref is None and in_body is not None:
            body = await _read_body(receive)
            ref = in_body(body)
            receive = _replay(body, receive)
        if ref is None:
            await self.app(scope, receive, send)
            return
        forwarded = any(name == FORWARDED_BY for name, _ in scope["headers"])
        try:
            owner_url = await scope["app"].state.service.locate(ref, forwarded=forwarded)
        except JupyCellError as error:
            await self._refuse(scope, send, error)
            return
        if owner_url is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._relay_websocket(scope, receive, send, owner_url)
        else:
            if body is None:
                body = await _read_body(receive)
            await self._forward_http(scope, send, owner_url, body, ref)

    # --- HTTP -----------------------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use: on the serving loop
            timeout = httpx.Timeout(connect=5.0, read=None, write=60.0, pool=30.0)  # runs take as long as they take
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        return self._client

    async def _owner_gone(self, scope: Scope, ref: int | str, owner_url: str) -> None:
        """Return once the replica at ``owner_url`` no longer serves the kernel (its lease expired: it died or
        hangs, its host may be unreachable). A forwarded request waits as long as its run takes, but not longer
        than its owner lives: a connection to a dead host would otherwise hang until TCP gives up."""
        service = scope["app"].state.service
        while True:
            await asyncio.sleep(self.owner_check_interval)
            with contextlib.suppress(Exception):  # the database unreachable for a moment: keep waiting
                if not await service.served_by(ref, owner_url):
                    return

    async def _forward_http(self, scope: Scope, send: Send, owner_url: str, body: bytes, ref: int | str) -> None:
        owner_gone = asyncio.ensure_future(self._owner_gone(scope, ref, owner_url))
        try:
            await self._exchange(scope, send, owner_url, body, owner_gone)
        finally:
            owner_gone.cancel()

    async def _exchange(
        self, scope: Scope, send: Send, owner_url: str, body: bytes, owner_gone: asyncio.Future[Any]
    ) -> None:
        target = owner_url + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        # The MCP server checks the Host header (DNS rebinding): the owner gets the one this replica accepted.
        dropped = _HOP_BY_HOP - {b"host"} if scope["path"] in _MCP_PATHS else _HOP_BY_HOP
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in dropped and k != FORWARDED_BY]
        headers.append((FORWARDED_BY, self.replica_id))
        request = self.client.build_request(scope["method"], target, headers=headers, content=body)
        exchange: asyncio.Future[Any] = asyncio.ensure_future(self.client.send(request, stream=True))
        await asyncio.wait([exchange, owner_gone], return_when=asyncio.FIRST_COMPLETED)
        if not exchange.done():
            exchange.cancel()
            log.warning("replica at %s stopped serving its kernel before answering %s", owner_url, scope["path"])
            await self._refuse(scope, send, _unreachable(owner_url))
            return
        try:
            response = exchange.result()
        except httpx.TransportError as error:
            log.warning("forwarding %s %s to %s failed: %s", scope["method"], scope["path"], owner_url, error)
            await self._refuse(scope, send, _unreachable(owner_url))
            return
        try:
            raw = [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": raw})
            relay: asyncio.Future[Any] = asyncio.ensure_future(_relay_body(response, send))
            await asyncio.wait([relay, owner_gone], return_when=asyncio.FIRST_COMPLETED)
            if not relay.done():  # the owner died mid-stream: end what was relayed so far
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await relay
                log.warning("replica at %s stopped serving its kernel while streaming %s", owner_url, scope["path"])
            elif relay.exception() is not None:
                raise relay.exception()  # type: ignore[misc]
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _refuse(self, scope: Scope, send: Send, error: JupyCellError) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": str(error)[:120]})
            return
        body = json.dumps({"detail": str(error), "error": type(error).__name__}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if isinstance(error, ReplicaUnreachable):
            headers.append((b"retry-after", self.retry_after))
        await send({"type": "http.response.start", "status": status_of(error), "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # --- websocket ------------------------------------------------------------------------------------------

    async def _relay_websocket(self, scope: Scope, receive: Receive, send: Send, owner_url: str) -> None:
        """Open the same websocket on the owner, accept the client's with the subprotocol the owner chose, then
        copy frames both ways until either side closes (the close code is passed on)."""
        if (await receive())["type"] != "websocket.connect":
            return
        target = "ws" + owner_url.removeprefix("http") + scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() in _WS_HEADERS]
        headers.append((FORWARDED_BY.decode(), self.replica_id.decode()))
        try:
            upstream = await connect(
                target, subprotocols=scope.get("subprotocols") or None, additional_headers=headers,
                max_size=None, open_timeout=10, compression=None,
            )  # fmt: skip
        except InvalidStatus as refused:
            reason = refused.response.body.decode(errors="replace")[:120] if refused.response.body else "refused"
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        except (OSError, TimeoutError, WebSocketException) as error:
            log.warning("forwarding a websocket to %s failed: %s", owner_url, error)
            await send({"type": "websocket.close", "code": 1013, "reason": "the replica serving the kernel is away"})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            to_owner = asyncio.create_task(_client_to_owner(receive, upstream))
            to_client = asyncio.create_task(_owner_to_client(upstream, send))
            await asyncio.wait({to_owner, to_client}, return_when=asyncio.FIRST_COMPLETED)
            for task in (to_owner, to_client):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def _relay_body(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _client_to_owner(receive: Receive, upstream: ClientConnection) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(message.get("code", 1000))
            return
        if message.get("text") is not None:
            await upstream.send(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send(message["bytes"])


async def _owner_to_client(upstream: ClientConnection, send: Send) -> None:
    try:
        async for frame in upstream:
            await send({"type": "websocket.send", **({"text": frame} if isinstance(frame, str) else {"bytes": frame})})
    except ConnectionClosed:
        pass
    code, reason = upstream.close_code or 1011, upstream.close_reason or ""
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code, "reason": reason})


# --- which kernel a request names -------------------------------------------------------------------------------


def _kernel_in_path_or_query(scope: Scope) -> int | str | None:
    path: str = scope["path"]
    if (match := _KERNEL_PATH.match(path)) is not None:
        ref = match.group(1)
        return int(ref) if ref.isdigit() and len(ref) < 20 else ref
    if path in _QUERY_PATHS:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("kernel_id", [])
        if values and values[0].isdigit() and len(values[0]) < 20:
            return int(values[0])
    return None


def _kernel_in_body(body: bytes) -> int | None:
    try:
        kernel_id = json.loads(body).get("kernel_id")
    except (ValueError, AttributeError):
        return None  # not a JSON object: the route says what is wrong
    return kernel_id if isinstance(kernel_id, int) and not isinstance(kernel_id, bool) else None


def _kernel_in_tool_call(body: bytes) -> int | None:
    """The ``kernel_id`` argument of an MCP ``tools/call`` request (stateless MCP: any replica can answer it)."""
    try:
        message = json.loads(body)
        arguments = message["params"]["arguments"] if message.get("method") == "tools/call" else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None  # not a tool call: the MCP server says what is wrong, if anything
    kernel_id = arguments.get("kernel_id") if isinstance(arguments, dict) else None
    return kernel_id if isinstance(kernel_id, int) and not isinstance(kernel_id, bool) else None


#: Requests that name their kernel in their JSON body, and how to read it.
_BODY_PATHS: dict[str, Callable[[bytes], int | None]] = {
    "/cell": _kernel_in_body, "/cell/stream": _kernel_in_body, **dict.fromkeys(_MCP_PATHS, _kernel_in_tool_call),
}  # fmt: skip


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body read already, then whatever comes next (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _unreachable(owner_url: str) -> ReplicaUnreachable:
    return ReplicaUnreachable(
        f"The gateway replica serving this kernel ({owner_url}) does not answer; if it is gone, another replica "
        "takes the kernel over once its lease expires. Retry in a few seconds."
    )
