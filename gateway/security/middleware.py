"""The gate every request passes: authentication, per-key rate, request size, and one audit line per action.

An ASGI middleware, so it covers every route and websocket the app has or will have (deny by default); only
``PUBLIC_PATHS`` (health and the API docs) are open. Routes reach the caller through ``gateway.api.auth``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.security.audit import AuditLog
from gateway.security.keys import ANONYMOUS, Caller, KeyRing, secret_from_header
from gateway.security.rate_limit import RateLimiter

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/"})
#: Static assets (the docs' and the live view's scripts and styles) and the live view's page (a shell that holds no
#: data: it reads its kernel's events with the caller's key or view token): open like the docs. (issue 14)
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PAGES = re.compile(r"^/kernels/\d{1,16}/view$")

#: Extra ways in, tried before the API keys (issue 14: view tokens, the metrics token). Each answers a Caller for
#: the requests it is meant for, or None.
Authenticator = Callable[[Scope], Caller | None]

#: File uploads and notebook imports: their bodies may be as large as ``max_upload_bytes``.
UPLOAD_PATHS = re.compile(r"^/kernels/[^/]+/(?:files/.+|notebook)$")

#: Keys of the ASGI scope's ``state`` (what ``request.state`` reads): the caller, and audit details routes add.
CALLER_STATE = "caller"
AUDIT_STATE = "audit"


class RequestTooLarge(Exception):
    pass


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        limiter: RateLimiter,
        audit: AuditLog,
        max_request_bytes: int,
        max_upload_bytes: int = 0,
        authenticators: Sequence[Authenticator] = (),
    ) -> None:
        self.app = app
        self.authenticators = tuple(authenticators)
        self.keys = keys
        self.limiter = limiter
        self.audit = audit
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max(max_upload_bytes, max_request_bytes)

    def _body_limit(self, scope: Scope) -> int:
        if scope.get("method") in ("PUT", "POST") and UPLOAD_PATHS.match(scope["path"]):
            return self.max_upload_bytes
        return self.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] not in ("http", "websocket")
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith(PUBLIC_PREFIXES)
            or PUBLIC_PAGES.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state: dict[str, Any] = scope.setdefault("state", {})
        audit: dict[str, Any] = state.setdefault(AUDIT_STATE, {})
        method = scope.get("method", "WEBSOCKET")
        status: list[int] = []

        async def send_recording(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status.append(message["status"])
            elif message["type"] == "websocket.accept" and not status:
                status.append(101)  # switched protocols: the websocket was served
            elif message["type"] == "websocket.close" and not status:
                status.append(403)
            await send(message)

        caller = self._authenticate(scope)
        try:
            if caller is None:
                await self._refuse(
                    scope,
                    send_recording,
                    401,
                    "Missing or invalid API key: send `Authorization: Bearer <key>`.",
                    {"WWW-Authenticate": 'Bearer realm="jupycell"'},
                )
                return
            state[CALLER_STATE] = caller
            if caller.key_id is not None and (retry_after := self.limiter.check(caller.key_id)) is not None:
                await self._refuse(
                    scope,
                    send_recording,
                    429,
                    f"Rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst}) for key "
                    f"{caller.key_id!r} exceeded; retry in {retry_after} s.",
                    {"Retry-After": str(retry_after)},
                )
                return
            if scope["type"] == "http":
                limit = self._body_limit(scope)
                try:
                    receive = await self._buffered_body(scope, receive, limit)
                except RequestTooLarge:
                    await self._refuse(
                        scope,
                        send_recording,
                        413,
                        f"Request body too large: the limit is {limit} bytes.",
                    )
                    return
            await self.app(scope, receive, send_recording)
        finally:
            code = status[0] if status else 500
            route = scope.get("route")
            record = {
                "key_id": caller.key_id if caller else None,
                "action": f"{method} {getattr(route, 'path', scope['path'])}",
                "kernel": scope.get("path_params", {}).get("kernel_id"),
                **{k: v for k, v in audit.items() if v is not None},
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "status": code,
            }
            record.setdefault("outcome", _outcome(code))
            self.audit.record(**record)

    def _authenticate(self, scope: Scope) -> Caller | None:
        for authenticate in self.authenticators:  # issue 14
            if (caller := authenticate(scope)) is not None:
                return caller
        if not self.keys.enabled:
            return ANONYMOUS
        secret = secret_from_header(Headers(scope=scope).get("authorization"))
        return self.keys.authenticate(secret) if secret else None

    async def _buffered_body(self, scope: Scope, receive: Receive, limit: int) -> Receive:
        """Read the whole body (refusing it past the limit) and hand it on as one message."""
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # disconnected: let the app see it
                first: Message | None = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break

        async def replay() -> Message:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()

        return replay

    @staticmethod
    async def _refuse(
        scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        scope["state"][AUDIT_STATE]["outcome"] = _outcome(status)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        body = json.dumps({"detail": detail}).encode()
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


def _outcome(status: int) -> str:
    return {401: "unauthenticated", 404: "not found", 413: "too large", 429: "limited"}.get(
        status, "ok" if status < 400 else "error"
    )
