"""Dependencies shared by the routers: the core's facade, the settings, and the caller's own kernels."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.api.auth import CallerDep, owned_kernel
from gateway.kernels.kernel import Kernel
from gateway.kernels.service import KernelService
from gateway.settings import Settings


async def get_service(request: Request) -> KernelService:
    """``async`` on purpose: a plain ``def`` dependency would cost every request a hop to the thread pool."""
    service: KernelService = request.app.state.service
    return service


ServiceDep = Annotated[KernelService, Depends(get_service)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def _owned_kernel(kernel_id: int, service: ServiceDep, caller: CallerDep) -> Kernel:
    return owned_kernel(service, caller, kernel_id)


#: The kernel named by the ``kernel_id`` path parameter, if the caller may reach it (404 otherwise).
OwnedKernel = Annotated[Kernel, Depends(_owned_kernel)]
