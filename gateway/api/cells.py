"""The seed API: ``POST /start``, ``POST /cell`` (add, edit, run, run_all, delete), ``GET /cell_outputs``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request

from gateway.api.auth import CallerDep, audit_note, owned_kernel
from gateway.api.deps import ServiceDep, SettingsDep
from gateway.api.encoding import EncodedJSON, encoded
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
    StartRequest,
    StartResponse,
    StatusResponse,
)
from gateway.api.views import run_record, run_view, shown_outputs
from gateway.errors import CodeTooLarge
from gateway.kernels.kernel import RunResult

router = APIRouter(tags=["notebook"])


@router.post("/start", response_model=StartResponse)
async def start_kernel(
    service: ServiceDep, caller: CallerDep, request: Request, body: Annotated[StartRequest | None, Body()] = None
) -> EncodedJSON:
    """Start a kernel in a new sandbox container; returns once it answers. The body is optional."""
    runtime = body.runtime if body is not None else None
    image = body.image if body is not None else None
    kernel = await service.start(owner=caller.key_id, runtime=runtime, image=image)
    audit_note(request, kernel=kernel.id, runtime=kernel.runtime, **({"image": kernel.image} if kernel.image else {}))
    return encoded(StartResponse(kernel_id=kernel.id))


@router.post("/cell", response_model=StatusResponse | RunResponse | RunAllResponse)
async def cell_action(
    request: Annotated[CellRequest, Body()],
    service: ServiceDep,
    caller: CallerDep,
    settings: SettingsDep,
    http: Request,
) -> EncodedJSON:
    """Add, edit, run or delete a cell; run all cells in order, or only the stale and never-run ones
    (``run_stale``); both stop at the first failure. (Responses are encoded once: see ``gateway.api.encoding``.)"""
    audit_note(
        http, action=f"cell.{request.action}", kernel=request.kernel_id, cell=getattr(request, "cell_number", None)
    )
    code = getattr(request, "code", None)
    if code is not None:
        audit_note(http, code=code)
        if (size := len(code.encode(errors="surrogatepass"))) > settings.max_code_bytes:
            raise CodeTooLarge(size, settings.max_code_bytes)
    kernel = owned_kernel(service, caller, request.kernel_id)
    match request:
        case AddCell():
            await service.add_cell(kernel, request.cell_number, request.code, expected_version=request.expected_version)
            return encoded(StatusResponse(status=f"Cell {request.cell_number} added.", version=kernel.notebook.version))
        case EditCell():
            await service.edit_cell(
                kernel, request.cell_number, request.code, expected_version=request.expected_version
            )
            return encoded(
                StatusResponse(status=f"Cell {request.cell_number} updated.", version=kernel.notebook.version)
            )
        case DeleteCell():
            await service.delete_cell(kernel, request.cell_number, expected_version=request.expected_version)
            return encoded(
                StatusResponse(status=f"Cell {request.cell_number} deleted.", version=kernel.notebook.version)
            )
        case RunCell() if request.with_dependencies:
            audit_note(http, code=kernel.notebook.get(request.cell_number).code)
            results = await service.run_with_dependencies(
                kernel, request.cell_number, request.timeout, wait=request.wait
            )
            audit_note(http, outcome=results[-1].status if results else "ok", cells_run=len(results))
            return encoded(run_with_dependencies_response(results, request.cell_number, request.strip_ansi))
        case RunCell():
            audit_note(http, code=kernel.notebook.get(request.cell_number).code)
            result = await service.run_cell(kernel, request.cell_number, request.timeout, wait=request.wait)
            audit_note(http, outcome=result.status)
            return encoded(RunResponse(**run_view(result, request.strip_ansi)))
        case RunAll():
            results = await service.run_all(kernel, request.timeout, wait=request.wait)
            audit_note(http, outcome=results[-1].status if results else "ok", cells_run=len(results))
            return encoded(run_all_response(results, request.strip_ansi))
        case RunStale():
            results = await service.run_stale(kernel, request.timeout, wait=request.wait)
            audit_note(http, outcome=results[-1].status if results else "ok", cells_run=len(results))
            return encoded(run_all_response(results, request.strip_ansi))


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
    service: ServiceDep,
    caller: CallerDep,
    http: Request,
    strip_ansi: Annotated[bool, Query(description="Remove ANSI colour codes from tracebacks and streams.")] = False,
) -> CellOutputsResponse:
    """The outputs of the cell's last run (empty if it never ran), its status and run record."""
    audit_note(http, kernel=kernel_id, cell=cell_number)
    cell = owned_kernel(service, caller, kernel_id).notebook.get(cell_number)
    return CellOutputsResponse(outputs=shown_outputs(cell.outputs, strip_ansi), status=cell.status, **run_record(cell))
