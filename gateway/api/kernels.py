"""Kernel lifecycle next to the seed API: list, inspect, shut down, interrupt, restart, list cells."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gateway.api.auth import CallerDep, owned_kernel, visible_kernels
from gateway.api.deps import ManagerDep
from gateway.api.views import cell_view
from gateway.kernels.kernel import Kernel

router = APIRouter(prefix="/kernels", tags=["kernels"])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def kernel_model(kernel: Kernel, limits: dict[str, Any]) -> dict[str, Any]:
    return {
        "kernel_id": kernel.id,
        "owner": kernel.owner,
        "runtime": kernel.runtime,
        "jupyter_id": kernel.uuid,  # its id in Jupyter's API (/api/kernels/{jupyter_id})
        "state": kernel.state,
        "created": _iso(kernel.created),
        "last_activity": _iso(kernel.last_activity),
        "cell_count": len(kernel.notebook.cells),
        "version": kernel.notebook.version,  # issue 12
        "last_death": kernel.last_death,
        "limits": limits,
    }


@router.get("")
async def list_kernels(manager: ManagerDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's kernels (every kernel for an admin key)."""
    limits = asdict(manager.sandbox.spec)
    return {"kernels": [kernel_model(k, limits) for k in visible_kernels(manager, caller)]}


@router.get("/{kernel_id}")
async def get_kernel(kernel_id: int, manager: ManagerDep, caller: CallerDep) -> dict[str, Any]:
    return kernel_model(owned_kernel(manager, caller, kernel_id), asdict(manager.sandbox.spec))


@router.delete("/{kernel_id}")
async def shutdown_kernel(kernel_id: int, manager: ManagerDep, caller: CallerDep) -> dict[str, str]:
    """Shut the kernel down and remove its container; its cells are gone."""
    kernel = owned_kernel(manager, caller, kernel_id)
    await manager.shutdown(kernel.id)
    return {"status": f"Kernel {kernel_id} shut down."}


@router.post("/{kernel_id}/interrupt")
async def interrupt_kernel(kernel_id: int, manager: ManagerDep, caller: CallerDep) -> dict[str, str]:
    await manager.interrupt(owned_kernel(manager, caller, kernel_id))  # issue 12: one code path with MCP
    return {"status": f"Kernel {kernel_id} interrupted."}


@router.post("/{kernel_id}/restart")
async def restart_kernel(kernel_id: int, manager: ManagerDep, caller: CallerDep) -> dict[str, str]:
    """Replace the kernel's container with a fresh one; cells are kept and marked as not run."""
    kernel = owned_kernel(manager, caller, kernel_id)
    await manager.restart(kernel)
    return {"status": f"Kernel {kernel_id} restarted."}


@router.get("/{kernel_id}/cells")
async def list_cells(
    kernel_id: int, manager: ManagerDep, caller: CallerDep, strip_ansi: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """Every cell in run order: code, outputs, status, run record (execution count, times, duration, stale)."""
    notebook = owned_kernel(manager, caller, kernel_id).notebook
    return {"cells": [cell_view(cell, strip_ansi) for cell in notebook.in_order()], "version": notebook.version}
