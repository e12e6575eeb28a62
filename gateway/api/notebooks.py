"""A kernel's cells as a Jupyter notebook: ``GET`` exports an ``.ipynb``, ``POST`` imports one."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import OwnedKernel, ServiceDep, SettingsDep
from gateway.api.json_body import read_json
from gateway.errors import CodeTooLarge, InvalidNotebook
from gateway.notebook.ipynb import cells_to_ipynb, from_ipynb, schema_warnings
from gateway.safe_json import NotJSON, TooDeep

router = APIRouter(prefix="/kernels", tags=["notebooks"])


@router.get("/{kernel_id}/notebook")
async def export_notebook(kernel: OwnedKernel) -> JSONResponse:
    """The kernel's cells, outputs and execution counts as an nbformat v4 ``.ipynb`` document."""
    cells = kernel.notebook.in_order()  # taken here: the loop may change the notebook meanwhile
    document = await asyncio.to_thread(cells_to_ipynb, cells, kernel.id, kernel.notebook.version)
    return JSONResponse(
        document,
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": f'attachment; filename="jupycell-{kernel.id}.ipynb"'},
    )


@router.post("/{kernel_id}/notebook")
async def import_notebook(
    kernel: OwnedKernel,
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    expected_version: Annotated[int | None, Query(ge=0, description="409 unless the notebook is at it.")] = None,
) -> dict[str, object]:
    """Add the code cells of the ``.ipynb`` in the body (numbers from JupyCell metadata, else after the last).

    Checked whole before any cell is added: refused when the body is not a v4 notebook, is nested too deeply,
    brings a cell number the kernel has, code over ``max_code_bytes`` or more cells than ``max_cells`` leaves room
    for. ``warnings``: what the nbformat schema finds wrong in the parts an import does not use."""
    notebook = kernel.notebook
    notebook.expect_version(expected_version)  # early; checked again with the first change
    try:
        document = await read_json(request, settings.max_file_bytes)
    except NotJSON as error:
        raise InvalidNotebook(f"Invalid notebook: the body is not JSON ({error}).") from None
    except TooDeep as error:
        raise InvalidNotebook(f"Invalid notebook: the body is JSON {error}.") from None
    imported = from_ipynb(document, set(notebook.cells))
    notebook.ensure_room(len(imported.cells), settings.max_cells)
    for _, code in imported.cells:
        if (size := len(code.encode(errors="surrogatepass"))) > settings.max_code_bytes:
            raise CodeTooLarge(size, settings.max_code_bytes)
    warnings = await asyncio.to_thread(schema_warnings, document)
    for index, (number, code) in enumerate(imported.cells):  # the cap is checked again: others may add meanwhile
        await service.add_cell(kernel, number, code, expected_version=expected_version if index == 0 else None)
    numbers = [number for number, _ in imported.cells]
    return {
        "status": f"Imported {len(numbers)} cells.",
        "cells": numbers,
        "skipped": imported.skipped,
        "warnings": warnings,
        "version": notebook.version,
    }
