"""Counts every HTTP request and websocket by route template, method and status; times the ordinary ones.

Streaming responses (``text/event-stream``) and websockets are counted but not timed (a stream's length says
nothing about the gateway's speed); while open they are counted in ``jupycell_open_streams{kind}``. The route label
is the matched route's template (``/kernels/{kernel_id}``), ``unmatched`` for anything else: never a raw path.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.metrics.registry import GatewayMetrics


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        websocket = scope["type"] == "websocket"
        method = "WEBSOCKET" if websocket else scope.get("method", "")
        started = time.perf_counter()
        status = [0]
        stream: list[str] = []
        m = self.metrics

        async def send_observed(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status[0] = message["status"]
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.startswith(b"text/event-stream"):
                    stream.append("sse")
                    m.open_streams.labels("sse").inc()
            elif kind == "websocket.accept":
                status[0] = 101
                stream.append("websocket")
                m.open_streams.labels("websocket").inc()
            elif kind == "websocket.close" and not status[0]:
                status[0] = 403
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            for kind in stream:
                m.open_streams.labels(kind).dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            m.http_requests.labels(route, method, str(status[0] or 500)).inc()
            if not stream:
                m.http_seconds.labels(route, method).observe(time.perf_counter() - started)
