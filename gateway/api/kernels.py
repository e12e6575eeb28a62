"""Kernel lifecycle next to the seed API: list, inspect, shut down, interrupt, restart, list cells."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.api.deps import ManagerDep
from gateway.api.views import cell_view
from gateway.kernels.kernel import Kernel

router = APIRouter(prefix="/kernels", tags=["kernels"])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def kernel_model(kernel: Kernel, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "kernel_id": kernel.id,
        "state": kernel.state,
        "created": _iso(kernel.created),
        "last_activity": _iso(kernel.last_activity),
        "cell_count": len(kernel.notebook.cells),
        "last_death": kernel.last_death,
        "limits": limits,
    }


@router.get("")
async def list_kernels(manager: ManagerDep) -> dict[str, Any]:
    limits = asdict(manager.sandbox.spec)
    return {"kernels": [kernel_model(k, limits) for k in manager.kernels.values()]}


@router.get("/{kernel_id}")
async def get_kernel(kernel_id: int, manager: ManagerDep) -> dict[str, Any]:
    return kernel_model(manager.get(kernel_id), asdict(manager.sandbox.spec))


@router.delete("/{kernel_id}")
async def shutdown_kernel(kernel_id: int, manager: ManagerDep) -> dict[str, str]:
    """Shut the kernel down and remove its container; its cells are gone."""
    await manager.shutdown(kernel_id)
    return {"status": f"Kernel {kernel_id} shut down."}


@router.post("/{kernel_id}/interrupt")
async def interrupt_kernel(kernel_id: int, manager: ManagerDep) -> dict[str, str]:
    kernel = manager.get(kernel_id)
    if kernel.client is not None:
        await kernel.client.interrupt()
    return {"status": f"Kernel {kernel_id} interrupted."}


@router.post("/{kernel_id}/restart")
async def restart_kernel(kernel_id: int, manager: ManagerDep) -> dict[str, str]:
    """Replace the kernel's container with a fresh one; cells are kept and marked as not run."""
    await manager.restart(manager.get(kernel_id))
    return {"status": f"Kernel {kernel_id} restarted."}


@router.get("/{kernel_id}/cells")
async def list_cells(
    kernel_id: int, manager: ManagerDep, strip_ansi: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """Every cell in run order: code, outputs, status, run record (execution count, times, duration, stale)."""
    cells = manager.get(kernel_id).notebook.in_order()
    return {"cells": [cell_view(cell, strip_ansi) for cell in cells]}
