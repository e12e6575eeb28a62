"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.kernels.manager import KernelManager
from gateway.settings import Settings


async def get_manager(request: Request) -> KernelManager:
    """``async`` on purpose: a plain ``def`` dependency would cost every request a hop to the thread pool."""
    return request.app.state.manager


ManagerDep = Annotated[KernelManager, Depends(get_manager)]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
