"""The FastAPI application: settings, lifespan (store, engine check, kernel manager), routers, error mapping.

Run with ``uvicorn --factory gateway.main:create_app`` (no app is built at import time); tests build their own
app with ``create_app(settings)``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from gateway.api import cells, files, health, jupyter, kernels, notebooks, pool, stream
from gateway.errors import JupyCellError
from gateway.kernels.manager import KernelManager
from gateway.sandbox import DockerSandbox
from gateway.security.audit import AuditLog
from gateway.security.keys import KeyRing
from gateway.security.middleware import SecurityMiddleware
from gateway.security.rate_limit import RateLimiter
from gateway.settings import Settings
from gateway.store import Store

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings are read from the environment unless given."""
    settings = settings or Settings()
    keys = KeyRing.load(settings.api_keys.get_secret_value() if settings.api_keys else None, settings.api_keys_file)
    audit = AuditLog(settings.audit_log)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        store = await Store.open(settings)
        manager = KernelManager(settings, DockerSandbox(settings), store)
        await manager.start_up()
        app.state.manager = manager
        log.info(
            "JupyCell ready: instance %r, image %r, runtimes %s, API keys: %s",
            settings.instance,
            settings.sandbox_image,
            ", ".join(settings.runtimes),
            ", ".join(keys.ids) or "none",
        )
        if not keys.enabled:
            log.warning(_OPEN_API_WARNING)
        try:
            yield
        finally:
            try:
                await manager.shut_down()
                audit.close()
            finally:
                await store.close()

    app = FastAPI(
        title="JupyCell",
        summary="Notebook cells run in sandboxed, per-kernel Docker containers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.audit = audit  # for what is not one request per action (the kernel websocket's executes)
    app.include_router(cells.router)
    app.include_router(stream.router)
    app.include_router(kernels.router)
    app.include_router(notebooks.router)
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(jupyter.router)
    app.include_router(pool.router)
    app.add_exception_handler(JupyCellError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(
        SecurityMiddleware,
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        audit=audit,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=int(settings.max_file_mb * 2**20),
    )
    if settings.cors_origin_list:  # outermost: answers preflights, adds its headers to refusals too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE", "PATCH", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


_OPEN_API_WARNING = """
******************************************************************************************
*  NO API KEYS CONFIGURED: anyone who can reach this port can run code on this machine.  *
*  Bind the gateway to 127.0.0.1 only, or set JUPYCELL_API_KEYS / JUPYCELL_API_KEYS_FILE  *
*  (entries `id:secret`, `id:secret:admin`).                                              *
******************************************************************************************"""


async def _domain_error(request: Request, error: JupyCellError) -> JSONResponse:
    body = {"detail": str(error)}
    if request.url.path.startswith("/api/"):  # Jupyter's error body: jupyter_server shows message and reason
        body |= {"message": str(error), "reason": HTTPStatus(error.status_code).phrase}
    return JSONResponse(body, status_code=error.status_code)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence (``detail``) and pydantic's itemised ``errors``."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part not in ("body", "query", "path"))
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    errors = [{k: v for k, v in item.items() if k in ("loc", "msg", "type")} for item in error.errors()]
    return JSONResponse({"detail": "Invalid request: " + "; ".join(problems), "errors": errors}, status_code=422)
