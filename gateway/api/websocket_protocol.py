"""uvicorn's websocket protocol (``websockets-sansio``), with a denial response counted as a finished handshake.

The kernel websocket refuses an unknown kernel with an HTTP 404 before the handshake (the ASGI denial-response
extension). uvicorn 0.5x's sans-I/O protocol sends that response correctly but then logs "ASGI callable returned
without completing handshake." as an error. Run uvicorn with ``--ws gateway.api.websocket_protocol:WebSocketProtocol``
(the gateway image, the test harness and the benchmark do) for a clean refusal.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class WebSocketProtocol(WebSocketsSansIOProtocol):
    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True  # answered (refused): nothing more is owed to the client
