"""The composition root: settings, adapters (Docker, SQL, ZMQ), the core's ``KernelService``, routers, errors.

Run with ``uvicorn --factory gateway.main:create_app``; nothing is built at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from gateway.adapters.agents import AgentsBackend
from gateway.adapters.agents.packages import AgentPackageHost
from gateway.adapters.docker import DockerSandbox
from gateway.adapters.docker.cgroups import CgroupReader
from gateway.adapters.sql import Store
from gateway.adapters.sql.coordination import SqlCoordination
from gateway.adapters.sql.database import database_url
from gateway.adapters.sql.ownership import Ownership
from gateway.api import cells, docs, errors, execute, files, health, kernels, live, metrics, notebooks, pool, stream
from gateway.api import packages as packages_api
from gateway.api.jupyter import routes as jupyter
from gateway.api.jupyter.relay import Relays
from gateway.api.listings import ReplicaListings
from gateway.api.replicas import ReplicaForwarding
from gateway.collector import restore_at_shut_down, tune_after_start_up
from gateway.kernels.ports import SandboxBackend
from gateway.kernels.service import KernelService
from gateway.mcp import mount_mcp
from gateway.metrics.http import HttpMetricsMiddleware
from gateway.metrics.observer import KernelObserver
from gateway.packages.local_host import LocalPackageHost
from gateway.packages.service import PackageService, PackageStore
from gateway.packages.settings import PackageSettings
from gateway.protocol.client import ZmqConnector
from gateway.security.audit import AuditLog
from gateway.security.keys import KeyRing
from gateway.security.middleware import SecurityMiddleware
from gateway.security.rate_limit import RateLimiter
from gateway.security.view_tokens import MetricsToken, ViewTokens
from gateway.settings import Settings

log = logging.getLogger("gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings are read from the environment unless given."""
    settings = settings or Settings()
    if not logging.getLogger().handlers:  # before the MCP SDK, which would install its own (rich) handler
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keys = KeyRing.load(settings.api_keys.get_secret_value() if settings.api_keys else None, settings.api_keys_file)
    audit = AuditLog(settings.audit_log)
    observer = KernelObserver(cgroups=CgroupReader(settings.cgroup_root))  # live events, metrics, run usage
    view_tokens = ViewTokens()
    # Issue 11: listings show every replica's kernels (gateway.api.listings); none with one gateway.
    listings = ReplicaListings(settings.replica_id, settings.replica_listing_timeout) if settings.replicated else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.open(settings)
        connector = ZmqConnector(settings.max_message_bytes, settings.max_kernels)
        coordination = None  # issue 11: with PostgreSQL, admission, the warm pool and the leader are shared
        if store.engine.dialect.name == "postgresql":
            coordination = SqlCoordination(database_url(settings), settings.instance)
        ownership = None
        if settings.replicated:  # issue 11: one of several replicas on this database
            ownership = Ownership(
                store, instance=settings.instance, replica_id=settings.replica_id, url=settings.own_url,
                lease_seconds=settings.lease_seconds,
            )  # fmt: skip
        # Packages on demand (issue 13): fetched outside the kernels, mounted read-only into each one.
        backend, packages = _backend(settings, store)
        service = KernelService(settings, backend, connector, store, observer, packages, coordination, ownership)
        app.state.relays = Relays(settings, connector.context, audit, prefetch=service.prefetch)
        observer.metrics.watch_store(store.engine)
        observer.metrics.watch_kernels(lambda: [k.state for k in service.registry])
        observer.metrics.watch_pool(service.pool_status)
        try:
            await service.start_up()
        except BaseException:
            await store.close()
            if coordination is not None:
                await coordination.close()
            raise
        app.state.service = service
        tune_after_start_up()
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
            if settings.mcp_enabled:  # issue 12: the mounted MCP app's session manager runs with the app
                async with app.state.mcp.session_manager.run():
                    yield
            else:
                yield
        finally:
            restore_at_shut_down()
            try:
                await service.shut_down()
                audit.close()
            finally:
                await store.close()
                if coordination is not None:
                    await coordination.close()
                connector.close()
                if listings is not None:
                    await listings.close()

    app = FastAPI(
        title="JupyCell",
        summary="Notebook cells run in sandboxed, per-kernel Docker containers.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by gateway.api.docs from vendored assets (no CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.listings = listings
    app.state.observer = observer
    app.state.view_tokens = view_tokens
    app.include_router(cells.router)
    app.include_router(stream.router)
    app.include_router(kernels.router)
    app.include_router(notebooks.router)
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(jupyter.router)
    app.include_router(pool.router)
    app.include_router(live.router)
    app.include_router(metrics.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=live.STATIC), name="static")
    app.include_router(execute.router)
    app.include_router(packages_api.router)  # issue 13
    if settings.mcp_enabled:
        mount_mcp(app, settings)  # /mcp, after every route of the app's own
    errors.install(app)
    if settings.replicated:  # issue 11: inside the security gate, so only authenticated requests are forwarded
        app.add_middleware(ReplicaForwarding, replica_id=settings.replica_id, lease_seconds=settings.lease_seconds)
    app.add_middleware(
        SecurityMiddleware,
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        audit=audit,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_file_bytes,
        authenticators=[
            view_tokens.authenticate,
            *([MetricsToken(settings.metrics_token.get_secret_value()).authenticate] if settings.metrics_token else []),
        ],
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=observer.metrics)  # outside the gate: refusals count too
    if settings.cors_origin_list:  # outermost: answers preflights, adds its headers to refusals too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE", "PATCH", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _backend(settings: Settings, store: PackageStore) -> tuple[SandboxBackend, PackageService]:
    """Where kernels run, and their packages on demand: this host's engine and disk (the packages mounts added to
    each kernel container), or the nodes of the agents, whose agents keep the wheels (``JUPYCELL_BACKEND``)."""
    config = PackageSettings()
    if settings.backend == "agents":
        agents = AgentsBackend.from_settings(settings)
        host = AgentPackageHost(agents, config.package_fetch_timeout)
        return agents, PackageService(settings, store, config, host)
    local = LocalPackageHost(settings, config)
    packages = PackageService(settings, store, config, local)
    return DockerSandbox.from_settings(settings, local.container_mounts if packages.enabled else None), packages


_OPEN_API_WARNING = """
******************************************************************************************
*  NO API KEYS CONFIGURED: anyone who can reach this port can run code on this machine.  *
*  Bind the gateway to 127.0.0.1 only, or set JUPYCELL_API_KEYS / JUPYCELL_API_KEYS_FILE  *
*  (entries `id:secret`, `id:secret:admin`).                                              *
******************************************************************************************"""
