"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.kernels.manager import KernelManager
from gateway.settings import Settings


def get_manager(request: Request) -> KernelManager:
    return request.app.state.manager


ManagerDep = Annotated[KernelManager, Depends(get_manager)]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
