"""``POST /cell/stream``: run a cell and receive its outputs as Server-Sent Events while it runs.

Events, each ``data`` a JSON object:

- ``output``: ``{"cell_number": n, "output": {...nbformat output...}}``, one per output as the kernel sends it
  (stream chunks are not merged here; past the output caps one notice is sent and the rest is in ``done``);
- ``done``: the run's result, exactly the body ``POST /cell`` action ``run`` would have returned;
- ``error``: ``{"status_code": ..., "detail": ...}`` if the run could not happen (e.g. the kernel is dead).

Errors known before the run starts (unknown kernel or cell, busy kernel with ``wait: false``, bad body) are plain
HTTP errors, as for ``POST /cell``. The run belongs to the gateway, not to the connection: if the client goes away,
it goes on to its end and its outputs are stored as usual (``GET /cell_outputs``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel

from gateway.api.auth import CallerDep, audit_note, owned_kernel
from gateway.api.cells import run_with_dependencies_response
from gateway.api.deps import ServiceDep
from gateway.api.errors import status_of
from gateway.api.schemas import RunCell, RunResponse
from gateway.api.views import run_view, shown_outputs
from gateway.errors import JupyCellError
from gateway.kernels.ports import OnOutput
from gateway.kernels.service import KernelService
from gateway.notebook.outputs import Output

router = APIRouter(tags=["notebook"])

KEEPALIVE_SECONDS = 15.0


class StreamRun(RunCell):
    """The body of ``POST /cell`` action ``run`` (``action`` may be left out)."""

    action: Literal["run"] = "run"


def _event(kind: str, data: Any) -> bytes:
    return format_sse_event(event=kind, data_str=json.dumps(data, separators=(",", ":")))


@router.post(
    "/cell/stream",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "description": "output events, then done or error"}},
)
async def stream_cell(
    request: Annotated[StreamRun, Body()], service: ServiceDep, caller: CallerDep, http: Request
) -> EventSourceResponse:
    """Run a cell (optionally with its dependencies) and stream each output as it happens, then the result."""
    audit_note(http, action="cell.run.stream", kernel=request.kernel_id, cell=request.cell_number)
    kernel = owned_kernel(service, caller, request.kernel_id)
    audit_note(http, code=kernel.notebook.get(request.cell_number).code)
    service.refuse_if_busy(kernel, request.wait)

    def start(on_output: OnOutput) -> Coroutine[Any, Any, Any]:
        if request.with_dependencies:
            return service.run_with_dependencies(
                kernel, request.cell_number, request.timeout, wait=request.wait, on_output=on_output
            )
        return service.run_cell(kernel, request.cell_number, request.timeout, wait=request.wait, on_output=on_output)

    def done(result: Any) -> RunResponse:
        if request.with_dependencies:
            return run_with_dependencies_response(result, request.cell_number, request.strip_ansi)
        return RunResponse(**run_view(result, request.strip_ansi))

    return stream_run(service, start, done, request.strip_ansi)


def stream_run(
    service: KernelService,
    start: Callable[[OnOutput], Coroutine[Any, Any, Any]],
    done: Callable[[Any], BaseModel],
    without_ansi: bool,
) -> EventSourceResponse:
    """The SSE response of a run (shared with ``POST /kernels/{id}/execute/stream``): ``start(on_output)`` makes
    the run, which the service owns; ``done(result)`` is the body of the ``done`` event."""
    events: asyncio.Queue[tuple[int, Output] | None] = asyncio.Queue()

    def on_output(cell_number: int, output: Output) -> None:
        events.put_nowait((cell_number, output))

    task = service.start_in_background(start(on_output))
    task.add_done_callback(lambda _: events.put_nowait(None))

    async def stream() -> AsyncIterator[bytes]:
        while True:
            try:
                item = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield KEEPALIVE_COMMENT
                continue
            if item is None:
                break
            cell_number, output = item
            (shown,) = shown_outputs([output], without_ansi)
            yield _event("output", {"cell_number": cell_number, "output": shown})
        try:
            result = task.result()
        except JupyCellError as error:
            yield _event("error", {"status_code": status_of(error), "detail": str(error)})
            return
        yield _event("done", done(result).model_dump(mode="json"))

    return EventSourceResponse(stream())
