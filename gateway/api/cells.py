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
    RunStale,
    StartResponse,
    StatusResponse,
)
from gateway.api.views import run_record, run_view, shown_outputs
from gateway.kernels.kernel import RunResult

router = APIRouter(tags=["notebook"])


@router.post("/start", response_model=StartResponse)
async def start_kernel(manager: ManagerDep) -> StartResponse:
    """Start a kernel in a new sandbox container; returns once it answers."""
    kernel = await manager.start()
    return StartResponse(kernel_id=kernel.id)


@router.post("/cell", response_model=StatusResponse | RunResponse | RunAllResponse)
async def cell_action(request: Annotated[CellRequest, Body()], manager: ManagerDep):
    """Add, edit, run or delete a cell; run all cells in order, or only the stale and never-run ones
    (``run_stale``); both stop at the first failure."""
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
        case RunCell() if request.with_dependencies:
            results = await manager.run_with_dependencies(
                kernel, request.cell_number, request.timeout, wait=request.wait
            )
            return run_with_dependencies_response(results, request.cell_number, request.strip_ansi)
        case RunCell():
            result = await manager.run_cell(kernel, request.cell_number, request.timeout, wait=request.wait)
            return RunResponse(**run_view(result, request.strip_ansi))
        case RunAll():
            results = await manager.run_all(kernel, request.timeout, wait=request.wait)
            return run_all_response(results, request.strip_ansi)
        case RunStale():
            results = await manager.run_stale(kernel, request.timeout, wait=request.wait)
            return run_all_response(results, request.strip_ansi)


def run_all_response(results: list[RunResult], without_ansi: bool) -> RunAllResponse:
    last = results[-1] if results else None
    failed = last if last is not None and last.status != "ok" else None
    return RunAllResponse(
        outputs=[CellRunOutputs(**run_view(r, without_ansi)) for r in results],
        status=failed.status if failed else "ok",
        failed_cell=failed.cell.number if failed else None,
        detail=failed.detail if failed else None,
    )


def run_with_dependencies_response(results: list[RunResult], number: int, without_ansi: bool) -> RunResponse:
    """The cell's own run with the dependency runs before it; or, if a dependency failed, that failed run."""
    *dependencies, last = results
    response = RunResponse(**run_view(last, without_ansi))
    response.dependency_runs = [CellRunOutputs(**run_view(r, without_ansi)) for r in dependencies]
    if last.cell.number != number:
        reason = f": {last.detail}" if last.detail else ""
        response.detail = (
            f"cell {number} was not run: cell {last.cell.number} it depends on ended {last.status}{reason}"
        )
    return response


@router.get("/cell_outputs", response_model=CellOutputsResponse)
async def cell_outputs(
    kernel_id: Annotated[int, Query()],
    cell_number: Annotated[int, Query()],
    manager: ManagerDep,
    strip_ansi: Annotated[bool, Query(description="Remove ANSI colour codes from tracebacks and streams.")] = False,
) -> CellOutputsResponse:
    """The outputs of the cell's last run (empty if it never ran), its status and run record."""
    cell = manager.get(kernel_id).notebook.get(cell_number)
    return CellOutputsResponse(outputs=shown_outputs(cell.outputs, strip_ansi), status=cell.status, **run_record(cell))
