"""Kernel lifecycle next to the seed API: list, inspect, shut down, interrupt, restart, list cells."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from gateway.api.auth import CallerDep, visible_kernels
from gateway.api.deps import OwnedKernel, ServiceDep
from gateway.api.listings import everywhere
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
        "image": kernel.image or limits.get("image"),  # issue 13: its own, or the deployment's
        "jupyter_id": kernel.uuid,  # its id in Jupyter's API (/api/kernels/{jupyter_id})
        "state": kernel.state,
        "created": _iso(kernel.created),
        "last_activity": _iso(kernel.last_activity),
        "cell_count": len(kernel.notebook.cells),
        "version": kernel.notebook.version,  # issue 12
        "last_death": kernel.last_death,
        "limits": limits,
        "view_url": f"/kernels/{kernel.id}/view",  # issue 14: the live read-only page
    }


@router.get("")
async def list_kernels(request: Request, response: Response, service: ServiceDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's kernels (every kernel for an admin key), on every replica of the deployment."""

    def local() -> list[dict[str, Any]]:
        return [kernel_model(k, service.limits) for k in visible_kernels(service, caller)]

    listing = await everywhere(request, caller, local, _entries, lambda k: kernel_model(k, service.limits))
    listing.mark(response)
    return {"kernels": listing.entries}


def _entries(body: Any) -> list[dict[str, Any]]:
    """The entries of another replica's answer to ``GET /kernels``."""
    entries: list[dict[str, Any]] = body["kernels"]
    return entries


@router.get("/{kernel_id}")
async def get_kernel(kernel: OwnedKernel, service: ServiceDep) -> dict[str, Any]:
    return kernel_model(kernel, service.limits)


@router.delete("/{kernel_id}")
async def shutdown_kernel(kernel: OwnedKernel, service: ServiceDep) -> dict[str, str]:
    """Shut the kernel down and remove its container; its cells are gone."""
    await service.shutdown(kernel.id)
    return {"status": f"Kernel {kernel.id} shut down."}


@router.post("/{kernel_id}/interrupt")
async def interrupt_kernel(kernel: OwnedKernel, service: ServiceDep) -> dict[str, str]:
    await service.interrupt(kernel)
    return {"status": f"Kernel {kernel.id} interrupted."}


@router.post("/{kernel_id}/restart")
async def restart_kernel(kernel: OwnedKernel, service: ServiceDep) -> dict[str, str]:
    """Replace the kernel's container with a fresh one; cells are kept and marked as not run."""
    await service.restart(kernel)
    return {"status": f"Kernel {kernel.id} restarted."}


@router.get("/{kernel_id}/cells")
async def list_cells(kernel: OwnedKernel, strip_ansi: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """Every cell in run order: code, outputs, status, run record (execution count, times, duration, stale)."""
    notebook = kernel.notebook
    return {"cells": [cell_view(cell, strip_ansi) for cell in notebook.in_order()], "version": notebook.version}
