"""``GET /pool``: the warm pool's state (size, ready, starting, hits, misses, failures, profile)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.api.deps import ServiceDep

router = APIRouter(tags=["kernels"])


@router.get("/pool")
async def pool_status(service: ServiceDep) -> dict[str, Any]:
    """Kernels kept ready for ``POST /start``: a hit claims one in milliseconds, a miss starts one cold."""
    return service.pool_status()
