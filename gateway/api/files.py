"""Files in a kernel's working directory: ``PUT`` / ``GET /kernels/{id}/files/{path}`` (raw bytes)."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Request, Response

from gateway.api.deps import OwnedKernel, ServiceDep, SettingsDep
from gateway.errors import FileTooLarge

router = APIRouter(prefix="/kernels", tags=["files"])


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FileTooLarge(f"Body too large: {declared} bytes, the limit is {limit}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FileTooLarge(f"Body too large: over the limit of {limit} bytes.")
    return bytes(body)


@router.put("/{kernel_id}/files/{path:path}")
async def upload_file(
    kernel: OwnedKernel, path: str, request: Request, service: ServiceDep, settings: SettingsDep
) -> dict[str, object]:
    """Store the request body as ``/work/{path}`` in the kernel (parent directories created, replaced whole)."""
    data = await read_body(request, settings.max_file_bytes)
    size = await service.upload(kernel, path, data)
    return {"path": path, "size": size}


@router.get("/{kernel_id}/files/{path:path}", response_class=Response)
async def download_file(kernel: OwnedKernel, path: str, service: ServiceDep) -> Response:
    """The bytes of ``/work/{path}`` in the kernel."""
    data = await service.download(kernel, path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Response(data, media_type=media_type)
