"""A kernel's cells as a Jupyter notebook: ``GET`` exports an ``.ipynb``, ``POST`` imports one."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import OwnedKernel, ServiceDep, SettingsDep
from gateway.api.files import read_body
from gateway.errors import CodeTooLarge, InvalidNotebook
from gateway.notebook.ipynb import from_ipynb, to_ipynb

router = APIRouter(prefix="/kernels", tags=["notebooks"])


@router.get("/{kernel_id}/notebook")
async def export_notebook(kernel: OwnedKernel) -> JSONResponse:
    """The kernel's cells, outputs and execution counts as an nbformat v4 ``.ipynb`` document."""
    kernel_id = kernel.id
    document = to_ipynb(kernel.notebook, kernel_id)
    return JSONResponse(
        document,
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": f'attachment; filename="jupycell-{kernel_id}.ipynb"'},
    )


@router.post("/{kernel_id}/notebook")
async def import_notebook(
    kernel: OwnedKernel, request: Request, service: ServiceDep, settings: SettingsDep
) -> dict[str, object]:
    """Add the code cells of the ``.ipynb`` in the body (numbers from JupyCell metadata, else after the last)."""
    notebook = kernel.notebook
    body = await read_body(request, settings.max_file_bytes)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidNotebook(f"Invalid notebook: the body is not JSON ({error}).") from None
    imported = from_ipynb(document, set(notebook.cells))
    for _, code in imported.cells:
        if (size := len(code.encode(errors="surrogatepass"))) > settings.max_code_bytes:
            raise CodeTooLarge(size, settings.max_code_bytes)
    for number, code in imported.cells:
        await service.add_cell(kernel, number, code)
    numbers = [number for number, _ in imported.cells]
    return {"status": f"Imported {len(numbers)} cells.", "cells": numbers, "skipped": imported.skipped}
