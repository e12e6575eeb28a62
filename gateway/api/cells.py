"""The seed API: ``POST /start``, ``POST /cell`` (add, edit, run, run_all, delete), ``GET /cell_outputs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from gateway.api.deps import ManagerDep
from gateway.api.schemas import (
    AddCell,
    CellOutputsResponse,
    CellRequest,
    CellRunOutputs,
    DeleteCell,
    EditCell,
    RunAll,
    RunAllResponse,
    RunCell,
    RunResponse,
    StartResponse,
    StatusResponse,
)

router = APIRouter(tags=["notebook"])


@router.post("/start", response_model=StartResponse)
async def start_kernel(manager: ManagerDep) -> StartResponse:
    """Start a kernel in a new sandbox container; returns once it answers."""
    kernel = await manager.start()
    return StartResponse(kernel_id=kernel.id)


@router.post("/cell", response_model=StatusResponse | RunResponse | RunAllResponse)
async def cell_action(request: Annotated[CellRequest, Body()], manager: ManagerDep):
    """Add, edit, run or delete a cell, or run all cells in order (stopping at the first failure)."""
    kernel = manager.get(request.kernel_id)
    match request:
        case AddCell():
            kernel.notebook.add(request.cell_number, request.code)
            return StatusResponse(status=f"Cell {request.cell_number} added.")
        case EditCell():
            kernel.notebook.edit(request.cell_number, request.code)
            return StatusResponse(status=f"Cell {request.cell_number} updated.")
        case DeleteCell():
            kernel.notebook.delete(request.cell_number)
            return StatusResponse(status=f"Cell {request.cell_number} deleted.")
        case RunCell():
            result = await manager.run_cell(kernel, request.cell_number, request.timeout)
            return RunResponse(**result.as_dict())
        case RunAll():
            results = await manager.run_all(kernel, request.timeout)
            last = results[-1] if results else None
            failed = last if last is not None and last.status != "ok" else None
            return RunAllResponse(
                outputs=[
                    CellRunOutputs(
                        cell_number=r.cell.number, outputs=r.outputs, status=r.status, execution_count=r.execution_count
                    )
                    for r in results
                ],
                status=failed.status if failed else "ok",
                failed_cell=failed.cell.number if failed else None,
                detail=failed.detail if failed else None,
            )


@router.get("/cell_outputs", response_model=CellOutputsResponse)
async def cell_outputs(
    kernel_id: Annotated[int, Query()], cell_number: Annotated[int, Query()], manager: ManagerDep
) -> CellOutputsResponse:
    """The outputs of the cell's last run (empty if it never ran)."""
    cell = manager.get(kernel_id).notebook.get(cell_number)
    return CellOutputsResponse(outputs=cell.outputs, status=cell.status, execution_count=cell.execution_count)
