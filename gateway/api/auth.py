"""What routes know of the caller: who it is (set by ``gateway.security.middleware``), which kernels it may
reach, and details it adds to the request's audit line.

A kernel belongs to the key that started it. Any other (non-admin) key is told the kernel does not exist (404),
exactly as for an id that was never issued, so ids of other callers' kernels cannot be probed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.errors import KernelNotFound
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.security.audit import code_fields
from gateway.security.keys import Caller
from gateway.security.middleware import AUDIT_STATE, CALLER_STATE


def get_caller(request: Request) -> Caller:
    caller = request.scope.get("state", {}).get(CALLER_STATE)
    if not isinstance(caller, Caller):  # only reachable if a public path used this dependency: fail closed
        raise RuntimeError("no authenticated caller on this request")
    return caller


async def _caller(request: Request) -> Caller:
    """``get_caller`` as a dependency: ``async`` so that it costs no thread-pool hop per request."""
    return get_caller(request)


CallerDep = Annotated[Caller, Depends(_caller)]


def owned_kernel(service: KernelService, caller: Caller, kernel_id: int | str) -> Kernel:
    """The kernel (by seed API id, or a string: either id) if the caller may reach it; KernelNotFound otherwise."""
    kernel = service.get(kernel_id) if isinstance(kernel_id, int) else service.find(kernel_id)
    if not caller.owns(kernel.owner):
        raise KernelNotFound(kernel_id)
    return kernel


def visible_kernels(service: KernelService, caller: Caller) -> list[Kernel]:
    """The kernels a listing shows this caller: its own, or all for an admin (or an open API)."""
    return service.kernels_visible_to(caller.owns)


def audit_note(request: Request, *, code: str | None = None, **fields: Any) -> None:
    """Add details (kernel, action, outcome, the code's hash and size) to this request's audit line."""
    note = request.scope.setdefault("state", {}).setdefault(AUDIT_STATE, {})
    note.update(fields)
    if code is not None:
        note.update(code_fields(code))
