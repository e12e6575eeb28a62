"""A person watching a kernel: its live read-only page, its event stream, read-only links, its resource use.

- ``GET /kernels/{id}/view``: one static page (``gateway/static/live/``) that follows the kernel's events (public:
  it holds no data; the events need the caller's key or a view token as bearer);
- ``GET /kernels/{id}/events``: Server-Sent Events, each ``data`` a JSON object, each with an ``id``:
  ``snapshot`` (the whole kernel: state, cells, the run in progress) first, unless ``Last-Event-ID`` names an event
  still in the replay buffer, in which case the events after it come instead; then ``cell_added``,
  ``cell_edited``, ``cell_deleted``, ``run_started``, ``output``, ``run_finished`` and ``kernel_state`` as they
  happen. The stream ends when the kernel is shut down (or when a reader falls too far behind: it reconnects);
- ``POST /kernels/{id}/view-tokens`` (the kernel's owner or an admin): a read-only link with an expiry;
  ``GET`` lists them, ``DELETE .../{token_id}`` revokes one;
- ``GET /kernels/{id}/stats``: memory, CPU, processes and tmpfs use of the kernel's container, against its limits;
- ``GET /``: a small index page of one's kernels.

Both pages are served with a strict Content-Security-Policy: scripts only from the gateway, no network but the
gateway, images only inline; outputs' HTML goes into sandboxed iframes without scripts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event
from pydantic import BaseModel, Field

from gateway.api.auth import CallerDep, audit_note, owned_kernel
from gateway.api.deps import ServiceDep, SettingsDep
from gateway.errors import KernelNotFound
from gateway.kernels.events import Event
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.metrics.observer import KernelObserver
from gateway.security.keys import Caller
from gateway.security.view_tokens import Viewer, ViewTokenNotFound, ViewTokens, ViewTokenTooLong

router = APIRouter(tags=["live view"])

STATIC = Path(__file__).resolve().parent.parent / "static"
KEEPALIVE_SECONDS = 15.0

#: The live view's policy: nothing from outside, no inline script, no plugin, no form, not framed by others.
#: Inline styles are allowed for coloured text and for the sandboxed HTML outputs (which inherit this policy).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-src 'self'; child-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def get_observer(request: Request) -> KernelObserver:
    observer: KernelObserver = request.app.state.observer
    return observer


async def get_view_tokens(request: Request) -> ViewTokens:
    tokens: ViewTokens = request.app.state.view_tokens
    return tokens


ObserverDep = Annotated[KernelObserver, Depends(get_observer)]
ViewTokensDep = Annotated[ViewTokens, Depends(get_view_tokens)]


def watchable_kernel(service: KernelService, caller: Caller, kernel_id: int) -> Kernel:
    """The kernel if the caller may watch it: its owner, an admin, an open API, or a view token for it."""
    if isinstance(caller, Viewer):
        if caller.kernel_id != kernel_id:
            raise KernelNotFound(kernel_id)
        return service.get(kernel_id)
    return owned_kernel(service, caller, kernel_id)


@router.get("/", include_in_schema=False)
async def index_page() -> FileResponse:
    """The index page: one's kernels and links to their views (asks for an API key when the API has keys)."""
    return FileResponse(STATIC / "live" / "index.html", headers=PAGE_HEADERS)


@router.get("/kernels/{kernel_id}/view", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}})
async def view_page(kernel_id: int) -> FileResponse:
    """The kernel's live, read-only notebook page. Public: it is the same data-less page for every id; it reads
    the kernel's events with the token in its address's fragment (``#token=``, from a view link) or, on an open
    API, with none. Says nothing about whether the kernel exists."""
    return FileResponse(STATIC / "live" / "view.html", headers=PAGE_HEADERS)


def _sse(event: Event) -> bytes:
    return format_sse_event(event=event.kind, id=event.id, data_str=json.dumps(event.data, separators=(",", ":")))


@router.get(
    "/kernels/{kernel_id}/events",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "description": "snapshot or catch-up, then live events"}},
)
async def kernel_events(
    kernel_id: int,
    service: ServiceDep,
    caller: CallerDep,
    observer: ObserverDep,
    tokens: ViewTokensDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    """The kernel's events (see the module's docstring), resumable with ``Last-Event-ID``. A stream opened with a
    view token ends soon after the token expires or is revoked (at its next event or keep-alive)."""
    kernel = watchable_kernel(service, caller, kernel_id)
    token_id = caller.token_id if isinstance(caller, Viewer) else None
    observer.watch(kernel)
    hub = observer.hub
    # No await between these two lines: the snapshot and the subscription see the same moment.
    subscription, missed = hub.subscribe(kernel.id, last_event_id)
    snapshot = observer.snapshot(kernel) if missed is None else None
    snapshot_id = hub.last_id(kernel.id)

    async def stream() -> AsyncIterator[bytes]:
        try:
            if snapshot is not None:
                yield _sse(Event(snapshot_id, "snapshot", snapshot))
            for event in missed or ():
                yield _sse(event)
            while True:
                item: Event | bytes | None
                try:
                    item = await subscription.next(KEEPALIVE_SECONDS)
                except TimeoutError:
                    item = None if token_id and not tokens.alive(token_id) else KEEPALIVE_COMMENT
                if item is None or (token_id and not tokens.alive(token_id)):
                    return
                yield item if isinstance(item, bytes) else _sse(item)
        finally:
            subscription.close()

    return EventSourceResponse(stream(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class ViewTokenRequest(BaseModel):
    expires_in: int = Field(
        3600,
        ge=1,
        description="Lifetime of the link in seconds (at most the deployment's "
        "view_token_max_seconds, 7 days by default).",
    )


@router.post("/kernels/{kernel_id}/view-tokens", status_code=201)
async def create_view_token(
    kernel_id: int,
    service: ServiceDep,
    caller: CallerDep,
    settings: SettingsDep,
    tokens: ViewTokensDep,
    request: Request,
    body: ViewTokenRequest | None = None,
) -> dict[str, Any]:
    """A read-only link to the kernel's live view: it opens that page and its events, and nothing else. The token
    is shown once; revoke it with ``DELETE /kernels/{id}/view-tokens/{token_id}``."""
    kernel = owned_kernel(service, caller, kernel_id)
    lifetime = (body or ViewTokenRequest()).expires_in
    if lifetime > settings.view_token_max_seconds:
        raise ViewTokenTooLong(lifetime, settings.view_token_max_seconds)
    token, secret = tokens.issue(kernel.id, caller.key_id, lifetime)
    audit_note(request, kernel=kernel.id, action="view_token.create", token_id=token.id)
    return {**token.public(), "token": secret, "url": f"/kernels/{kernel.id}/view#token={secret}"}


@router.get("/kernels/{kernel_id}/view-tokens")
async def list_view_tokens(
    kernel_id: int, service: ServiceDep, caller: CallerDep, tokens: ViewTokensDep
) -> dict[str, Any]:
    """The kernel's live view links (without their secrets)."""
    kernel = owned_kernel(service, caller, kernel_id)
    return {"tokens": [t.public() for t in tokens.list(kernel.id)]}


@router.delete("/kernels/{kernel_id}/view-tokens/{token_id}")
async def revoke_view_token(
    kernel_id: int, token_id: str, service: ServiceDep, caller: CallerDep, tokens: ViewTokensDep, request: Request
) -> dict[str, str]:
    """Revoke a view link at once: pages already open stop receiving events at their next reconnect."""
    kernel = owned_kernel(service, caller, kernel_id)
    audit_note(request, kernel=kernel.id, action="view_token.revoke", token_id=token_id)
    if not tokens.revoke(kernel.id, token_id):
        raise ViewTokenNotFound(kernel_id, token_id)
    return {"status": f"View token {token_id} revoked."}


@router.get("/kernels/{kernel_id}/stats")
async def kernel_stats(kernel_id: int, service: ServiceDep, caller: CallerDep, observer: ObserverDep) -> dict[str, Any]:
    """The container's present use against its limits: memory (now, peak since the last run began), CPU seconds
    since it started, processes, bytes held in its tmpfs mounts (/tmp, /work, /dev/shm). ``null`` where the
    engine's cgroups cannot be read from the gateway."""
    kernel = owned_kernel(service, caller, kernel_id)
    spec = service.limits
    usage = await asyncio.to_thread(observer.cgroups.snapshot, kernel.container_id) or {}
    return {
        "kernel_id": kernel.id,
        "state": kernel.state,
        "memory_bytes": usage.get("memory_bytes"),
        "peak_memory_bytes": usage.get("peak_memory_bytes"),
        "memory_limit_bytes": spec["mem_limit_mb"] * 2**20,
        "cpu_seconds": usage.get("cpu_seconds"),
        "cpu_limit": spec["cpu_limit"],
        "pids": usage.get("pids"),
        "pids_limit": spec["pids_limit"],
        "tmpfs_bytes": usage.get("tmpfs_bytes"),
        "tmpfs_limit_bytes": (spec["tmp_size_mb"] + spec["work_size_mb"] + spec["shm_size_mb"]) * 2**20,
    }
