"""A kernel's cells as a Jupyter notebook: ``GET`` exports an ``.ipynb``, ``POST`` imports one."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from gateway.api.auth import CallerDep, owned_kernel
from gateway.api.deps import ManagerDep, SettingsDep
from gateway.api.files import read_body
from gateway.errors import CodeTooLarge, InvalidNotebook
from gateway.notebook.ipynb import from_ipynb, to_ipynb

router = APIRouter(prefix="/kernels", tags=["notebooks"])


@router.get("/{kernel_id}/notebook")
async def export_notebook(kernel_id: int, manager: ManagerDep, caller: CallerDep) -> JSONResponse:
    """The kernel's cells, outputs and execution counts as an nbformat v4 ``.ipynb`` document."""
    document = to_ipynb(owned_kernel(manager, caller, kernel_id).notebook, kernel_id)
    return JSONResponse(
        document,
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": f'attachment; filename="jupycell-{kernel_id}.ipynb"'},
    )


@router.post("/{kernel_id}/notebook")
async def import_notebook(
    kernel_id: int,
    request: Request,
    manager: ManagerDep,
    caller: CallerDep,
    settings: SettingsDep,
    expected_version: Annotated[int | None, Query(ge=0, description="409 unless the notebook is at it.")] = None,
) -> dict[str, object]:
    """Add the code cells of the ``.ipynb`` in the body (numbers from JupyCell metadata, else after the last)."""
    kernel = owned_kernel(manager, caller, kernel_id)
    kernel.notebook.expect_version(expected_version)  # issue 12: checked again below, before the first change
    notebook = kernel.notebook
    body = await read_body(request, int(manager.settings.max_file_mb * 2**20))
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidNotebook(f"Invalid notebook: the body is not JSON ({error}).") from None
    imported = from_ipynb(document, set(notebook.cells))
    for _, code in imported.cells:
        if (size := len(code.encode(errors="surrogatepass"))) > settings.max_code_bytes:
            raise CodeTooLarge(size, settings.max_code_bytes)
    kernel.notebook.expect_version(expected_version)  # issue 12: the body was read meanwhile
    for number, code in imported.cells:
        await manager.add_cell(kernel, number, code)
    numbers = [number for number, _ in imported.cells]
    return {
        "status": f"Imported {len(numbers)} cells.",
        "cells": numbers,
        "skipped": imported.skipped,
        "version": kernel.notebook.version,  # issue 12
    }
