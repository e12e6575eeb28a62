"""``GET /metrics``: the gateway's Prometheus metrics (see ``gateway.metrics`` and docs/metrics.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.api.auth import CallerDep
from gateway.api.live import ObserverDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(observer: ObserverDep, caller: CallerDep) -> Response:
    """Prometheus text format. Needs an API key like the rest of the API, or ``JUPYCELL_METRICS_TOKEN``."""
    return Response(observer.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
