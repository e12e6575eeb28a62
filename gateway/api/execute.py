"""One-call execution (issue 12): ``POST /kernels/{id}/execute`` appends the code as the next cell and runs it.

The cell is a normal cell afterwards (listed, exported, staleness-tracked). ``POST /kernels/{id}/execute/stream``
takes the same body and answers as ``POST /cell/stream`` does (``output`` events, then ``done`` or ``error``).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import CallerDep, audit_note, owned_kernel
from gateway.api.deps import ServiceDep, SettingsDep
from gateway.api.schemas import ExpectedVersion, RunResponse, StripAnsi, Timeout, Wait
from gateway.api.stream import stream_run
from gateway.api.views import run_view
from gateway.errors import CodeTooLarge
from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.ports import OnOutput
from gateway.settings import Settings

router = APIRouter(prefix="/kernels", tags=["notebook"])


class ExecuteRequest(BaseModel):
    """Code to append as a new cell and run."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="Python code; it becomes the cell after the highest-numbered one.")
    timeout: Timeout = None
    wait: Wait = True
    strip_ansi: StripAnsi = False
    expected_version: ExpectedVersion = None


class ExecuteResponse(RunResponse):
    """The run's outcome (as ``POST /cell`` action ``run``), with the new cell's number and the notebook's version."""

    cell_number: int
    version: int


def check_code_size(settings: Settings, code: str) -> None:
    """CodeTooLarge (413) past ``max_code_bytes``: the same limit ``POST /cell`` applies."""
    if (size := len(code.encode(errors="surrogatepass"))) > settings.max_code_bytes:
        raise CodeTooLarge(size, settings.max_code_bytes)


def execute_response(kernel: Kernel, result: RunResult, without_ansi: bool) -> ExecuteResponse:
    return ExecuteResponse(**{**run_view(result, without_ansi), "version": kernel.notebook.version})


@router.post("/{kernel_id}/execute", response_model=ExecuteResponse)
async def execute(
    kernel_id: int,
    request: Annotated[ExecuteRequest, Body()],
    service: ServiceDep,
    caller: CallerDep,
    settings: SettingsDep,
    http: Request,
) -> ExecuteResponse:
    """Append ``code`` as a new cell (the next number) and run it; the run's response plus ``cell_number`` and
    ``version``."""
    audit_note(http, action="kernel.execute", code=request.code)
    check_code_size(settings, request.code)
    kernel = owned_kernel(service, caller, kernel_id)
    result = await service.execute(
        kernel, request.code, request.timeout, wait=request.wait, expected_version=request.expected_version
    )
    audit_note(http, outcome=result.status, cell=result.cell.number)
    return execute_response(kernel, result, request.strip_ansi)


@router.post(
    "/{kernel_id}/execute/stream",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "description": "output events, then done or error"}},
)
async def execute_stream(
    kernel_id: int,
    request: Annotated[ExecuteRequest, Body()],
    service: ServiceDep,
    caller: CallerDep,
    settings: SettingsDep,
    http: Request,
) -> EventSourceResponse:
    """``execute`` with the outputs streamed as Server-Sent Events while the cell runs (see ``POST /cell/stream``).
    The run belongs to the gateway: it goes on if the client goes away."""
    audit_note(http, action="kernel.execute.stream", code=request.code)
    check_code_size(settings, request.code)
    kernel = owned_kernel(service, caller, kernel_id)
    kernel.notebook.expect_version(request.expected_version)  # refused as HTTP errors, before the stream starts
    service.refuse_if_busy(kernel, request.wait)

    def start(on_output: OnOutput) -> Coroutine[Any, Any, RunResult]:
        return service.execute(
            kernel,
            request.code,
            request.timeout,
            wait=request.wait,
            on_output=on_output,
            expected_version=request.expected_version,
        )

    return stream_run(
        service, start, lambda result: execute_response(kernel, result, request.strip_ansi), request.strip_ansi
    )
