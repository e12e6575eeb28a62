"""The MCP server (issue 12): JupyCell's kernels and cells as tools for a language model.

Every tool calls the same ``KernelService`` methods the HTTP routes call (one code path), as the caller the HTTP layer
authenticated (``gateway.security.middleware`` covers ``/mcp`` like any route: Bearer API key, 401 without one when
keys are configured, another key's kernel does not exist). Results are sized for a model (``gateway.mcp.results``)
and carry ``kernel_id``, ``cell_number``, ``status``, ``execution_count`` and ``version`` as structured content.

Runs belong to the gateway: a tool waits for its run, sending progress notifications meanwhile, and if the client
goes away the run goes on and its outputs are stored as usual.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import Field
from starlette.requests import Request

from gateway.api.auth import audit_note, owned_kernel, visible_kernels
from gateway.api.errors import status_of
from gateway.api.execute import check_code_size
from gateway.api.listings import everywhere
from gateway.errors import JupyCellError
from gateway.kernels.kernel import Kernel, RunResult
from gateway.kernels.service import KernelService
from gateway.mcp.results import IMAGE_MIMES, Limits, Shaped, cap_text, downscale, shape_outputs
from gateway.notebook import Cell
from gateway.notebook.outputs import Output
from gateway.security.keys import Caller
from gateway.security.middleware import CALLER_STATE
from gateway.settings import Settings

INSTRUCTIONS = """\
JupyCell runs Python in stateful Jupyter kernels, each in its own sandbox (no network, limited memory and time).
Start a kernel with start_kernel (or reuse one from list_kernels), then run code with execute_code: variables,
imports and files persist between calls on the same kernel. Every piece of code run becomes a numbered cell of the
kernel's notebook; list_cells shows them, and edit_cell/run_cell/run_all work on them. Plots (matplotlib) come back
as images. Files live under /work in the kernel (upload_file, download_file). A missing module: install_packages
(wheels from the gateway's package index; the kernel itself stays offline). Shut kernels down when finished."""

KernelId = Annotated[int, Field(description="The kernel's id, as returned by start_kernel or list_kernels.")]
CellNumber = Annotated[int, Field(ge=0, le=10**9, description="The cell's number (cells run in ascending order).")]
Code = Annotated[
    str,
    Field(
        description="Python source code. IPython syntax works (%magics; `%pip install NAME` lines are fetched by "
        "the gateway before the code runs; other network access fails)."
    ),
]
RunTimeout = Annotated[
    float | None,
    Field(None, gt=0, le=86_400, description="Deadline of the run in seconds (default: the server's, usually 300)."),
]
ExpectedVersion = Annotated[
    int | None,
    Field(
        None,
        ge=0,
        description="Only change the notebook if it is still at this version (the `version` of an earlier result); "
        "use it when someone else may edit the same kernel.",
    ),
]

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def _listed(kernel: Kernel) -> dict[str, Any]:
    """A kernel as ``list_kernels`` shows it."""
    return {
        "kernel_id": kernel.id,
        "state": kernel.state,
        "cells": len(kernel.notebook.cells),
        "version": kernel.notebook.version,
        "runtime": kernel.runtime,
        "last_death": kernel.last_death,
    }


def _from_seed_listing(body: Any) -> list[dict[str, Any]]:
    """Another replica's ``GET /kernels`` answer as ``list_kernels`` entries (KeyError, TypeError if it is not one)."""
    return [
        {
            "kernel_id": e["kernel_id"],
            "state": e["state"],
            "cells": e["cell_count"],
            "version": e["version"],
            "runtime": e["runtime"],
            "last_death": e["last_death"],
        }
        for e in body["kernels"]
    ]


def _error_result(message: str, **structured: Any) -> CallToolResult:
    return CallToolResult(content=[_text(message)], structured_content={"error": message, **structured}, is_error=True)


class JupyCellTools:
    """The tools, bound to the app whose service and settings they use."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limits = Limits(
            max_text_chars=settings.mcp_max_text_chars,
            max_image_side=settings.mcp_max_image_side,
            max_image_bytes=settings.mcp_max_image_bytes,
            max_images=settings.mcp_max_images,
            images=settings.mcp_images,
        )

    # --- plumbing -----------------------------------------------------------------------------------------

    @property
    def service(self) -> KernelService:
        service: KernelService = self.app.state.service
        return service

    @staticmethod
    def caller(ctx: Context) -> Caller:
        """The caller the security middleware authenticated for this HTTP request (fail closed without one)."""
        request = ctx.request_context.request
        caller = getattr(request, "scope", {}).get("state", {}).get(CALLER_STATE) if request is not None else None
        if not isinstance(caller, Caller):
            raise RuntimeError("no authenticated caller on this MCP request")
        return caller

    def kernel(self, ctx: Context, kernel_id: int) -> Kernel:
        return owned_kernel(self.service, self.caller(ctx), kernel_id)

    @staticmethod
    def note(ctx: Context, *, code: str | None = None, **fields: Any) -> None:
        """Details for the audit line of this HTTP request (``POST /mcp``)."""
        request = ctx.request_context.request
        if request is not None and hasattr(request, "scope"):
            audit_note(request, code=code, **fields)

    async def run(self, ctx: Context, what: str, start: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run ``start()`` as a gateway-owned task; report progress every ``mcp_progress_interval`` s until it ends.

        If this tool call is cancelled (the client went away), the run goes on: only the waiting stops."""
        task = self.service.start_in_background(start())
        began = time.monotonic()
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.settings.mcp_progress_interval)
            if done:
                return task.result()
            elapsed = time.monotonic() - began
            await ctx.report_progress(round(elapsed, 1), None, f"{what}: still running after {elapsed:.1f} s")

    async def shaped(self, outputs: list[Output], share: int = 1) -> Shaped:
        """The outputs shaped for the model, with ``1/share`` of the text budget; off the event loop when there are
        images (Pillow) or HTML to parse."""
        limits = replace(self.limits, max_text_chars=max(self.limits.max_text_chars // max(share, 1), 500))
        if any(mime in (o.get("data") or {}) for o in outputs for mime in (*IMAGE_MIMES, "text/html")):
            return await asyncio.to_thread(shape_outputs, outputs, limits)
        return shape_outputs(outputs, limits)

    @staticmethod
    def content(shaped: Shaped) -> list[ContentBlock]:
        blocks: list[ContentBlock] = []
        for part in shaped.parts:
            if part.image is not None:
                blocks.append(ImageContent(type="image", data=part.image, mime_type=part.mime_type))
            elif part.text:
                blocks.append(_text(part.text))
        return blocks

    async def run_result(self, kernel: Kernel, result: RunResult) -> CallToolResult:
        """One run as the model sees it: its outputs, a status line unless it ended ok, structured facts."""
        shaped = await self.shaped(result.outputs)
        blocks = self.content(shaped)
        if result.status != "ok" or not blocks:
            line = f"[cell {result.cell.number} ended {result.status}"
            line += f": {result.detail}]" if result.detail else "]"
            blocks.append(_text(line if result.status != "ok" else f"[cell {result.cell.number}: ok, no output]"))
        structured = {
            **self.run_facts(kernel, result),
            "truncated": result.truncated or shaped.dropped_chars > 0,
            "images_dropped": shaped.images_dropped,
            "error": shaped.error,
            "detail": result.detail,
        }
        return CallToolResult(content=blocks, structured_content=structured, is_error=result.status != "ok")

    @staticmethod
    def run_facts(kernel: Kernel, result: RunResult) -> dict[str, Any]:
        return {
            "kernel_id": kernel.id,
            "cell_number": result.cell.number,
            "status": result.status,
            "execution_count": result.execution_count,
            "version": kernel.notebook.version,
        }

    async def cell_text(self, cell: Cell, include_outputs: bool, share: int = 1) -> list[ContentBlock]:
        """The cell's header, code and (optionally) outputs; its code gets ``1/share`` of the text budget."""
        state = cell.status or "not run"
        if cell.stale:
            state += ", stale"
        if cell.execution_count is not None:
            state += f", execution_count {cell.execution_count}"
        code, _ = cap_text(cell.code, max(self.limits.max_text_chars // max(share, 1), 200))
        blocks: list[ContentBlock] = [_text(f"--- cell {cell.number} [{state}]\n{code}")]
        if include_outputs and cell.outputs:
            blocks += self.content(await self.shaped(cell.outputs, share))
        return blocks

    # --- tools --------------------------------------------------------------------------------------------

    async def start_kernel(
        self,
        ctx: Context,
        runtime: Annotated[
            str | None, Field(None, max_length=64, description="Container runtime, e.g. 'runsc', if allowed.")
        ] = None,
    ) -> CallToolResult:
        caller = self.caller(ctx)
        kernel = await self.service.start(owner=caller.key_id, runtime=runtime)
        self.note(ctx, kernel=kernel.id)
        facts = {"kernel_id": kernel.id, "runtime": kernel.runtime, "version": kernel.notebook.version}
        text = f"Kernel {kernel.id} started (runtime {kernel.runtime}). Use kernel_id={kernel.id} in other tools."
        return CallToolResult(content=[_text(text)], structured_content=facts)

    async def list_kernels(self, ctx: Context) -> CallToolResult:
        caller = self.caller(ctx)

        def local() -> list[dict[str, Any]]:
            return [_listed(k) for k in visible_kernels(self.service, caller)]

        request = ctx.request_context.request
        if isinstance(request, Request):  # issue 11: every replica's kernels (asked at their GET /kernels)
            listing = await everywhere(request, caller, local, _from_seed_listing, _listed, "/kernels", self.app)
            kernels = listing.entries
        else:
            kernels = local()
        lines = [
            f"kernel {k['kernel_id']}: {k['state']}, {k['cells']} cells, version {k['version']}, {k['runtime']}"
            + (f" (last death: {k['last_death']})" if k["last_death"] else "")
            for k in kernels
        ]
        text = "\n".join(lines) if lines else "No kernels. Start one with start_kernel."
        return CallToolResult(content=[_text(text)], structured_content={"kernels": kernels})

    async def execute_code(
        self, ctx: Context, kernel_id: KernelId, code: Code, timeout: RunTimeout = None
    ) -> CallToolResult:
        check_code_size(self.settings, code)
        kernel = self.kernel(ctx, kernel_id)
        result = await self.run(ctx, "executing code", lambda: self.service.execute(kernel, code, timeout))
        self.note(ctx, outcome=result.status, cell=result.cell.number)
        return await self.run_result(kernel, result)

    async def add_cell(
        self,
        ctx: Context,
        kernel_id: KernelId,
        code: Code,
        cell_number: Annotated[
            int | None, Field(None, ge=0, le=10**9, description="Number for the new cell; default: after the last.")
        ] = None,
        expected_version: ExpectedVersion = None,
    ) -> CallToolResult:
        check_code_size(self.settings, code)
        kernel = self.kernel(ctx, kernel_id)
        number = kernel.notebook.next_number() if cell_number is None else cell_number
        await self.service.add_cell(kernel, number, code, expected_version=expected_version)
        return self.changed(kernel, number, f"Cell {number} added (not run; use run_cell).")

    async def edit_cell(
        self,
        ctx: Context,
        kernel_id: KernelId,
        cell_number: CellNumber,
        code: Code,
        expected_version: ExpectedVersion = None,
    ) -> CallToolResult:
        check_code_size(self.settings, code)
        kernel = self.kernel(ctx, kernel_id)
        await self.service.edit_cell(kernel, cell_number, code, expected_version=expected_version)
        return self.changed(kernel, cell_number, f"Cell {cell_number} replaced (not run; cells using it are stale).")

    async def delete_cell(
        self, ctx: Context, kernel_id: KernelId, cell_number: CellNumber, expected_version: ExpectedVersion = None
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        await self.service.delete_cell(kernel, cell_number, expected_version=expected_version)
        return self.changed(kernel, cell_number, f"Cell {cell_number} deleted.")

    @staticmethod
    def changed(kernel: Kernel, number: int, text: str) -> CallToolResult:
        version = kernel.notebook.version
        facts = {"kernel_id": kernel.id, "cell_number": number, "version": version}
        return CallToolResult(content=[_text(f"{text} Notebook version {version}.")], structured_content=facts)

    async def run_cell(
        self, ctx: Context, kernel_id: KernelId, cell_number: CellNumber, timeout: RunTimeout = None
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        result = await self.run(
            ctx, f"running cell {cell_number}", lambda: self.service.run_cell(kernel, cell_number, timeout)
        )
        self.note(ctx, outcome=result.status)
        return await self.run_result(kernel, result)

    async def run_all(self, ctx: Context, kernel_id: KernelId, timeout: RunTimeout = None) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        results: list[RunResult] = await self.run(
            ctx, "running all cells", lambda: self.service.run_all(kernel, timeout)
        )
        blocks: list[ContentBlock] = []
        for result in results:
            blocks.append(_text(f"--- cell {result.cell.number}: {result.status}"))
            blocks += self.content(await self.shaped(result.outputs, share=len(results)))
        failed = results[-1] if results and results[-1].status != "ok" else None
        summary = f"Ran {len(results)} cells" + (
            f"; stopped at cell {failed.cell.number} ({failed.status})." if failed else ", all ok."
        )
        blocks.append(_text(summary))
        structured = {
            "kernel_id": kernel.id,
            "status": failed.status if failed else "ok",
            "failed_cell": failed.cell.number if failed else None,
            "version": kernel.notebook.version,
            "cells": [self.run_facts(kernel, r) for r in results],
        }
        return CallToolResult(content=blocks, structured_content=structured, is_error=failed is not None)

    async def list_cells(
        self,
        ctx: Context,
        kernel_id: KernelId,
        include_outputs: Annotated[
            bool, Field(False, description="Also show each cell's last outputs (can be long).")
        ] = False,
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        notebook = kernel.notebook
        cells = notebook.in_order()
        blocks: list[ContentBlock] = [
            _text(f"Kernel {kernel.id}: {len(cells)} cells, notebook version {notebook.version}.")
        ]
        for cell in cells:  # the listing as a whole stays within about one result's text budget
            blocks += await self.cell_text(cell, include_outputs, share=len(cells))
        structured = {
            "kernel_id": kernel.id,
            "version": notebook.version,
            "cells": [
                {"cell_number": c.number, "status": c.status, "execution_count": c.execution_count, "stale": c.stale}
                for c in cells
            ],
        }
        return CallToolResult(content=blocks, structured_content=structured)

    async def read_cell(
        self,
        ctx: Context,
        kernel_id: KernelId,
        cell_number: CellNumber,
        include_outputs: Annotated[bool, Field(True, description="Show the outputs of its last run.")] = True,
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        cell = kernel.notebook.get(cell_number)
        structured = {
            "kernel_id": kernel.id,
            "cell_number": cell.number,
            "status": cell.status,
            "execution_count": cell.execution_count,
            "stale": cell.stale,
            "version": kernel.notebook.version,
            "code": cell.code,
        }
        return CallToolResult(content=await self.cell_text(cell, include_outputs), structured_content=structured)

    async def upload_file(
        self,
        ctx: Context,
        kernel_id: KernelId,
        path: Annotated[str, Field(min_length=1, description="Path under /work, e.g. 'data/input.csv'.")],
        content: Annotated[str, Field(description="The file's content: text, or base64 with encoding='base64'.")],
        encoding: Annotated[Literal["text", "base64"], Field("text", description="How content is given.")] = "text",
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else content.encode()
        except ValueError:
            return _error_result("content is not valid base64.")
        size = await self.service.upload(kernel, path, data)
        text = f"Wrote {size} bytes to /work/{path}."
        return CallToolResult(
            content=[_text(text)], structured_content={"kernel_id": kernel.id, "path": path, "size": size}
        )

    async def download_file(
        self,
        ctx: Context,
        kernel_id: KernelId,
        path: Annotated[str, Field(min_length=1, description="Path under /work, e.g. 'results/plot.png'.")],
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        data = await self.service.download(kernel, path)
        facts = {"kernel_id": kernel.id, "path": path, "size": len(data)}
        try:
            text, dropped = cap_text(data.decode("utf-8"), self.limits.max_text_chars)
            return CallToolResult(content=[_text(text)], structured_content={**facts, "truncated": dropped > 0})
        except UnicodeDecodeError:
            pass
        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg" if data.startswith(b"\xff\xd8") else None
        if mime is not None and self.limits.images:
            image = await asyncio.to_thread(downscale, base64.b64encode(data).decode(), mime, self.limits)
            if not isinstance(image, str):
                block = ImageContent(type="image", data=image[0], mime_type=image[1])
                return CallToolResult(content=[block], structured_content=facts)
        text = (
            f"/work/{path} is a binary file of {len(data)} bytes; it is not shown here. Read it with code "
            f"(execute_code) or over HTTP: GET /kernels/{kernel.id}/files/{path}."
        )
        return CallToolResult(content=[_text(text)], structured_content=facts)

    async def install_packages(
        self,
        ctx: Context,
        kernel_id: KernelId,
        packages: Annotated[
            list[str],
            Field(
                min_length=1,
                max_length=100,
                description='Plain requirements from the package index, e.g. ["tabulate", "cffi>=1.16"].',
            ),
        ],
    ) -> CallToolResult:
        kernel = self.kernel(ctx, kernel_id)
        result = await self.run(ctx, "install_packages", lambda: self.service.install_packages(kernel, packages))
        wheels = ", ".join(f"{w['name']} {w['version']}" for w in result["installed"]) or "nothing new"
        text = f"Installed in kernel {kernel.id}: {wheels}. Import them now; they come back after a restart."
        return CallToolResult(content=[_text(text)], structured_content={"kernel_id": kernel.id, **result})

    async def interrupt_kernel(self, ctx: Context, kernel_id: KernelId) -> CallToolResult:
        await self.service.interrupt(self.kernel(ctx, kernel_id))
        return _kernel_result(kernel_id, "interrupted: a running cell ends with KeyboardInterrupt; memory is kept.")

    async def restart_kernel(self, ctx: Context, kernel_id: KernelId) -> CallToolResult:
        await self.service.restart(self.kernel(ctx, kernel_id))
        return _kernel_result(kernel_id, "restarted: memory is empty, cells are kept (not run); run_all re-runs them.")

    async def shutdown_kernel(self, ctx: Context, kernel_id: KernelId) -> CallToolResult:
        await self.service.shutdown(self.kernel(ctx, kernel_id).id)
        return _kernel_result(kernel_id, "shut down; its cells and files are gone.")


def _kernel_result(kernel_id: int, what: str) -> CallToolResult:
    return CallToolResult(content=[_text(f"Kernel {kernel_id} {what}")], structured_content={"kernel_id": kernel_id})


#: (tool name, annotations, description for the model). The names are part of the API: never rename.
TOOLS: list[tuple[str, ToolAnnotations, str]] = [
    (
        "start_kernel",
        ADDITIVE,
        "Start a new Python kernel in its own sandbox and return its kernel_id. Use it once per "
        "task and reuse the kernel: its memory (variables, imports) persists between calls. Takes a second or so.",
    ),
    (
        "list_kernels",
        READ_ONLY,
        "List your kernels with their state, number of cells and notebook version. Use it to "
        "find a kernel started earlier instead of starting a new one.",
    ),
    (
        "execute_code",
        DESTRUCTIVE,
        "Run Python code in a kernel and return its output: printed text, results, plots as "
        "images, or the error. The code is appended as a new cell of the kernel's notebook. State persists across "
        "calls. Output is trimmed to a size you can read (the start and the end are kept); long runs send progress. "
        "The kernel has no network: install packages with install_packages (or a `%pip install NAME` line). "
        "timeout is the run's deadline in seconds.",
    ),
    (
        "add_cell",
        ADDITIVE,
        "Add a cell to the kernel's notebook without running it (default number: after the last "
        "cell). Returns the cell_number and the notebook version.",
    ),
    (
        "edit_cell",
        DESTRUCTIVE,
        "Replace the code of an existing cell (it is not run; cells that depend on it become "
        "stale). Pass expected_version to refuse the edit if someone changed the notebook since you read it.",
    ),
    ("run_cell", DESTRUCTIVE, "Run one existing cell by its number and return its outputs, like execute_code."),
    (
        "run_all",
        DESTRUCTIVE,
        "Run every cell in ascending cell number, stopping at the first that fails; returns each "
        "cell's outputs. Use it after restart_kernel or after editing earlier cells.",
    ),
    (
        "delete_cell",
        DESTRUCTIVE,
        "Delete a cell from the notebook (the kernel's memory is not changed). Pass "
        "expected_version to refuse the deletion if the notebook changed since you read it.",
    ),
    (
        "list_cells",
        READ_ONLY,
        "Show the kernel's notebook: every cell's number, code, status (ok, error, stale, not "
        "run) and the notebook version. include_outputs=true adds each cell's last outputs (longer).",
    ),
    ("read_cell", READ_ONLY, "Show one cell's code, status and (by default) the outputs of its last run."),
    (
        "upload_file",
        DESTRUCTIVE,
        "Write a file under /work in the kernel (text, or base64 for binary), replacing "
        "any file at that path. Code then reads it, e.g. open('/work/data.csv').",
    ),
    (
        "download_file",
        READ_ONLY,
        "Read a file under /work in the kernel: text is returned (trimmed if long), PNG/JPEG "
        "images as images; other binary files are described, not shown.",
    ),
    (
        "install_packages",
        ADDITIVE,
        "Install Python packages (with their dependencies) into a kernel: the gateway fetches their wheels from its "
        "package index and the kernel installs them offline; importable at once, and again after a restart. "
        "Refused packages (policy, size caps, no wheel for the kernel's platform) come back as an error saying why.",
    ),
    (
        "interrupt_kernel",
        ADDITIVE,
        "Interrupt the cell running in a kernel (KeyboardInterrupt); memory is kept. Use it when a run takes too long.",
    ),
    (
        "restart_kernel",
        DESTRUCTIVE,
        "Restart the kernel with empty memory (variables and imports are lost; cells and "
        "files under /work are kept). Use it when the kernel is stuck or its state is broken.",
    ),
    (
        "shutdown_kernel",
        DESTRUCTIVE,
        "Shut a kernel down for good: its memory, cells and files are gone. Do it when the task is finished.",
    ),
]


def _as_tool_result(
    name: str, method: Callable[..., Awaitable[CallToolResult]]
) -> Callable[..., Awaitable[CallToolResult]]:
    """The tool, noted in the request's audit line, with the gateway's own errors (unknown kernel, version
    conflict, limits...) as error results."""

    @functools.wraps(method)
    async def tool(*args: Any, **kwargs: Any) -> CallToolResult:
        if isinstance(ctx := kwargs.get("ctx"), Context):
            cell = kwargs.get("cell_number")
            JupyCellTools.note(
                ctx, action=f"mcp.{name}", kernel=kwargs.get("kernel_id"), cell=cell, code=kwargs.get("code")
            )
        try:
            return await method(*args, **kwargs)
        except JupyCellError as error:
            extra = {"version": error.current} if hasattr(error, "current") else {}
            return _error_result(str(error), status_code=status_of(error), **extra)

    return tool


def build_mcp_server(app: FastAPI, settings: Settings) -> MCPServer:
    """The MCP server with JupyCell's tools, using the app's service (``app.state.service``) once it runs."""
    server = MCPServer("jupycell", title="JupyCell", instructions=INSTRUCTIONS, version=app.version)
    tools = JupyCellTools(app, settings)
    for name, hints, description in TOOLS:
        server.add_tool(
            _as_tool_result(name, getattr(tools, name)),
            name=name,
            description=description,
            annotations=hints,
            structured_output=False,
        )
    return server
