"""Mounting the MCP server in the FastAPI app at ``/mcp`` (streamable HTTP, stateless).

Stateless: clients of the 2026-07-28 protocol (no handshake) and of the handshake-era versions are both served, and
no session state ties a client to one gateway process. The host app's lifespan must run the SDK's session manager
(``app.state.mcp.session_manager.run()``); ``gateway.main`` does.
"""

from __future__ import annotations

from fastapi import FastAPI
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.mcp.server import build_mcp_server
from gateway.settings import Settings

PATH = "/mcp"


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host/Origin checks against DNS rebinding, from ``mcp_allowed_hosts`` / ``mcp_allowed_origins``."""
    hosts = settings.mcp_host_list
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=settings.mcp_origin_list
    )


def mount_mcp(app: FastAPI, settings: Settings) -> MCPServer:
    """Serve the MCP server at ``/mcp`` (also answering ``/mcp/``); stored as ``app.state.mcp``."""
    server = build_mcp_server(app, settings)
    asgi = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        transport_security=transport_security(settings),
        max_request_body_size=settings.max_request_bytes,
    )

    app.router.add_route(PATH, _AtRoot(asgi), methods=["GET", "POST", "DELETE"], include_in_schema=False)  # type: ignore[arg-type]
    app.router.routes.append(Mount(PATH, app=asgi))
    app.state.mcp = server
    return server


class _AtRoot:
    """``/mcp`` itself, served as ``/mcp/`` instead of redirected there (not every client follows a 307)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "") + PATH
        await self.app({**scope, "path": root + "/", "root_path": root}, receive, send)
