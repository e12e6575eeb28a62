"""Jupyter's remote-kernel protocol, as Jupyter Kernel Gateway serves it and ``jupyter server --gateway-url`` uses it.

``/api``, ``/api/kernelspecs[/{name}]``, ``/kernelspecs/{name}/{file}``, ``/api/kernels[/{id}]``,
``/api/kernels/{id}/interrupt|restart`` and the websocket ``/api/kernels/{id}/channels``. A kernel is named by its
Jupyter id (UUID) or its seed API id: both APIs reach every kernel, with the same keys and ownership rules
(``Authorization: token <key>``, which jupyter_server sends, or ``Bearer <key>``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import JSONResponse

from gateway.api.auth import CallerDep, get_caller, visible_kernels
from gateway.api.deps import ManagerDep
from gateway.errors import JupyCellError
from gateway.jupyter import specs
from gateway.jupyter.models import check_request, find_kernel, kernel_model, parse_create
from gateway.jupyter.relay import ChannelsRelay, Relays
from gateway.jupyter.wire import V1_PROTOCOL

router = APIRouter(tags=["jupyter"])


async def get_relays(request: Request) -> Relays:
    return _relays(request.app)


def _relays(app: Any) -> Relays:
    if getattr(app.state, "jupyter_relays", None) is None:
        app.state.jupyter_relays = Relays(app.state.settings, getattr(app.state, "audit", None))
    return app.state.jupyter_relays


RelaysDep = Annotated[Relays, Depends(get_relays)]


@router.get("/api")
async def api_version(request: Request) -> dict[str, str]:
    return {"version": request.app.version}


@router.get("/api/kernelspecs")
async def list_kernelspecs(manager: ManagerDep) -> dict[str, Any]:
    return specs.kernelspecs(manager.settings, manager.sandbox.spec)


@router.get("/api/kernelspecs/{name}")
async def get_kernelspec(name: str, manager: ManagerDep) -> dict[str, Any]:
    return specs.kernelspec(name, manager.settings, manager.sandbox.spec)


@router.get("/kernelspecs/{name}/{filename}")
async def get_kernelspec_resource(name: str, filename: str, manager: ManagerDep) -> Response:
    data = specs.resource(name, filename, manager.settings)
    if data is None:
        return JSONResponse({"message": f"No resource {filename!r} for kernel spec {name!r}."}, status_code=404)
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/kernels")
async def list_kernels(manager: ManagerDep, caller: CallerDep, relays: RelaysDep) -> list[dict[str, Any]]:
    """The caller's kernels (every kernel for an admin key), whichever API started them."""
    return [kernel_model(k, relays.connections(k), manager.settings) for k in visible_kernels(manager, caller)]


@router.post("/api/kernels", status_code=201)
async def start_kernel(
    request: Request, manager: ManagerDep, caller: CallerDep, relays: RelaysDep, response: Response
) -> dict[str, Any]:
    """Start a kernel in a new sandbox container (JSON body ``{"name", "env"}``, both optional).

    The body is read as JSON whatever its content type: JupyterLab's client sends it as ``text/plain``."""
    body = parse_create(await request.body())
    runtime, env = check_request(body, manager.settings)
    kernel = await manager.start(owner=caller.key_id, runtime=runtime, env=env)
    response.headers["Location"] = f"/api/kernels/{kernel.uuid}"
    return kernel_model(kernel, relays.connections(kernel), manager.settings)


@router.get("/api/kernels/{kernel_id}")
async def get_kernel(kernel_id: str, manager: ManagerDep, caller: CallerDep, relays: RelaysDep) -> dict[str, Any]:
    kernel = find_kernel(manager, caller, kernel_id)
    return kernel_model(kernel, relays.connections(kernel), manager.settings)


@router.delete("/api/kernels/{kernel_id}", status_code=204)
async def shutdown_kernel(kernel_id: str, manager: ManagerDep, caller: CallerDep) -> Response:
    """Shut the kernel down and remove its container (its websockets are closed)."""
    await manager.shutdown(find_kernel(manager, caller, kernel_id).id)
    return Response(status_code=204)


@router.post("/api/kernels/{kernel_id}/interrupt", status_code=204)
async def interrupt_kernel(kernel_id: str, manager: ManagerDep, caller: CallerDep) -> Response:
    kernel = find_kernel(manager, caller, kernel_id)
    if kernel.client is not None:
        await kernel.client.interrupt()
    return Response(status_code=204)


@router.post("/api/kernels/{kernel_id}/restart")
async def restart_kernel(kernel_id: str, manager: ManagerDep, caller: CallerDep, relays: RelaysDep) -> dict[str, Any]:
    """Interrupt what runs, then replace the kernel's container with a fresh one (same ids, cells kept)."""
    kernel = find_kernel(manager, caller, kernel_id)
    if kernel.client is not None:
        await kernel.client.interrupt()  # a seed API run holding the kernel ends instead of running on
    await manager.restart(kernel)
    return kernel_model(kernel, relays.connections(kernel), manager.settings)


@router.websocket("/api/kernels/{kernel_id}/channels")
async def kernel_channels(websocket: WebSocket, kernel_id: str) -> None:
    """The kernel's channels over a websocket: legacy JSON framing, or ``v1.kernel.websocket.jupyter.org``."""
    manager = websocket.app.state.manager
    caller = get_caller(websocket)  # type: ignore[arg-type]  # reads the scope only
    try:
        kernel = find_kernel(manager, caller, kernel_id)
    except JupyCellError as error:
        await websocket.send_denial_response(
            JSONResponse({"message": str(error), "reason": "Not Found"}, status_code=error.status_code)
        )
        return
    protocol = V1_PROTOCOL if V1_PROTOCOL in websocket.scope.get("subprotocols", ()) else None
    await websocket.accept(subprotocol=protocol)
    await ChannelsRelay(websocket, kernel, _relays(websocket.app), protocol, caller).run()
