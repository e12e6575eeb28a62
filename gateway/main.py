"""The FastAPI application: settings, lifespan (engine check, kernel manager), routers, error mapping.

Run with ``uvicorn gateway.main:app``; tests build their own app with ``create_app(settings)``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.api import cells, health, kernels
from gateway.errors import JupyCellError
from gateway.kernels.manager import KernelManager
from gateway.sandbox import DockerSandbox
from gateway.settings import Settings

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings are read from the environment unless given."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        manager = KernelManager(settings, DockerSandbox(settings))
        await manager.start_up()
        app.state.manager = manager
        log.info(
            "JupyCell ready: instance %r, image %r, runtime %r",
            settings.instance,
            settings.sandbox_image,
            settings.runtime,
        )
        try:
            yield
        finally:
            await manager.shut_down()

    app = FastAPI(
        title="JupyCell",
        summary="Notebook cells run in sandboxed, per-kernel Docker containers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(cells.router)
    app.include_router(kernels.router)
    app.include_router(health.router)
    app.add_exception_handler(JupyCellError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app


async def _domain_error(request: Request, error: JupyCellError) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=error.status_code)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence (``detail``) and pydantic's itemised ``errors``."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part not in ("body", "query", "path"))
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    errors = [{k: v for k, v in item.items() if k in ("loc", "msg", "type")} for item in error.errors()]
    return JSONResponse({"detail": "Invalid request: " + "; ".join(problems), "errors": errors}, status_code=422)


app = create_app()
