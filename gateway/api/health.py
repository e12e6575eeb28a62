"""``GET /health``: the gateway answers and the Docker engine is reachable."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.deps import ManagerDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(manager: ManagerDep) -> dict[str, object]:
    await manager.sandbox.ping()  # SandboxUnavailable -> 503
    return {"status": "ok", "docker": "ok", "kernels": len(manager.kernels)}
