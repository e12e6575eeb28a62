"""``GET /health``: the gateway answers and the container engine is reachable."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(service: ServiceDep) -> dict[str, object]:
    return await service.health()  # SandboxUnavailable -> 503
