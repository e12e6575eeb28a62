"""Jupyter's remote-kernel protocol, as Jupyter Kernel Gateway serves it and ``jupyter server --gateway-url`` uses it.

``/api``, ``/api/kernelspecs[/{name}]``, ``/kernelspecs/{name}/{file}``, ``/api/kernels[/{id}]``,
``/api/kernels/{id}/interrupt|restart`` and the websocket ``/api/kernels/{id}/channels``. A kernel is named by its
Jupyter id (UUID) or its seed API id: both APIs reach every kernel, with the same keys and ownership rules
(``Authorization: token <key>``, which jupyter_server sends, or ``Bearer <key>``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse

from gateway.api.auth import CallerDep, get_caller, owned_kernel, visible_kernels
from gateway.api.deps import ServiceDep, SettingsDep
from gateway.api.errors import status_of
from gateway.api.jupyter import specs
from gateway.api.jupyter.models import check_request, kernel_model, parse_create
from gateway.api.jupyter.relay import ChannelsRelay, Relays
from gateway.api.listings import everywhere
from gateway.errors import JupyCellError
from gateway.kernels.kernel import Kernel
from gateway.protocol.wire import V1_PROTOCOL

log = logging.getLogger(__name__)

router = APIRouter(tags=["jupyter"])


async def get_relays(request: Request) -> Relays:
    relays: Relays = request.app.state.relays
    return relays


RelaysDep = Annotated[Relays, Depends(get_relays)]


async def _jupyter_kernel(kernel_id: str, service: ServiceDep, caller: CallerDep) -> Kernel:
    return owned_kernel(service, caller, kernel_id)


#: The kernel named (by UUID or seed API id) in the path, if the caller may reach it (404 otherwise).
JupyterKernel = Annotated[Kernel, Depends(_jupyter_kernel)]


@router.get("/api")
async def api_version(request: Request) -> dict[str, str]:
    return {"version": request.app.version}


@router.get("/api/kernelspecs")
async def list_kernelspecs(service: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    return specs.kernelspecs(settings, service.limits)


@router.get("/api/kernelspecs/{name}")
async def get_kernelspec(name: str, service: ServiceDep, settings: SettingsDep) -> dict[str, Any]:
    return specs.kernelspec(name, settings, service.limits)


@router.get("/kernelspecs/{name}/{filename}")
async def get_kernelspec_resource(name: str, filename: str, settings: SettingsDep) -> Response:
    data = specs.resource(name, filename, settings)
    if data is None:
        return JSONResponse({"message": f"No resource {filename!r} for kernel spec {name!r}."}, status_code=404)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/kernels")
async def list_kernels(
    request: Request, response: Response, service: ServiceDep, caller: CallerDep, relays: RelaysDep,
    settings: SettingsDep,
) -> list[dict[str, Any]]:  # fmt: skip
    """The caller's kernels (every kernel for an admin key), whichever API started them, on every replica of the
    deployment (a kernel listed as last stored, its replica not answering, has no connections)."""

    def local() -> list[dict[str, Any]]:
        return [kernel_model(k, relays.connections(k), settings) for k in visible_kernels(service, caller)]

    listing = await everywhere(request, caller, local, lambda body: body, lambda k: kernel_model(k, 0, settings))
    listing.mark(response)
    return listing.entries


@router.post("/api/kernels", status_code=201)
async def start_kernel(
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    relays: RelaysDep,
    settings: SettingsDep,
    response: Response,
) -> dict[str, Any]:
    """Start a kernel in a new sandbox container (JSON body ``{"name", "env"}``, both optional).

    The body is read as JSON whatever its content type: JupyterLab's client sends it as ``text/plain``."""
    body = parse_create(await request.body())
    runtime, env = check_request(body, settings)
    image = specs.spec_profile(body.name, settings)[1] if body.name is not None else None  # issue 13
    kernel = await service.start(owner=caller.key_id, runtime=runtime, env=env, image=image)
    response.headers["Location"] = f"/api/kernels/{kernel.uuid}"
    return kernel_model(kernel, relays.connections(kernel), settings)


@router.get("/api/kernels/{kernel_id}")
async def get_kernel(kernel: JupyterKernel, relays: RelaysDep, settings: SettingsDep) -> dict[str, Any]:
    return kernel_model(kernel, relays.connections(kernel), settings)


@router.delete("/api/kernels/{kernel_id}", status_code=204)
async def shutdown_kernel(kernel: JupyterKernel, service: ServiceDep) -> Response:
    """Shut the kernel down and remove its container (its websockets are closed)."""
    await service.shutdown(kernel.id)
    return Response(status_code=204)


@router.post("/api/kernels/{kernel_id}/interrupt", status_code=204)
async def interrupt_kernel(kernel: JupyterKernel, service: ServiceDep) -> Response:
    await service.interrupt(kernel)
    return Response(status_code=204)


@router.post("/api/kernels/{kernel_id}/restart")
async def restart_kernel(
    kernel: JupyterKernel, service: ServiceDep, relays: RelaysDep, settings: SettingsDep
) -> dict[str, Any]:
    """Interrupt what runs, then replace the kernel's container with a fresh one (same ids, cells kept)."""
    await service.interrupt(kernel)  # a seed API run holding the kernel ends instead of running on
    await service.restart(kernel)
    return kernel_model(kernel, relays.connections(kernel), settings)


@router.websocket("/api/kernels/{kernel_id}/channels")
async def kernel_channels(websocket: WebSocket, kernel_id: str) -> None:
    """The kernel's channels over a websocket: legacy JSON framing, or ``v1.kernel.websocket.jupyter.org``.

    A kernel the caller cannot reach is refused before the handshake: with a 404 response where the server
    supports denial responses, else by closing the handshake (403)."""
    service = websocket.app.state.service
    caller = get_caller(websocket)  # type: ignore[arg-type]  # reads the scope only
    try:
        kernel = owned_kernel(service, caller, kernel_id)
    except JupyCellError as error:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(
                JSONResponse({"message": str(error), "reason": "Not Found"}, status_code=status_of(error))
            )
        else:
            await websocket.close(code=1008, reason=str(error)[:120])
        return
    protocol = V1_PROTOCOL if V1_PROTOCOL in websocket.scope.get("subprotocols", ()) else None
    await websocket.accept(subprotocol=protocol)
    await ChannelsRelay(websocket, kernel, websocket.app.state.relays, protocol, caller).run()
