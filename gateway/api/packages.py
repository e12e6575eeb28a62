"""Packages on demand for SDKs and agents: install into a kernel by request, list what it has (docs/packages.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from gateway.api.deps import OwnedKernel, ServiceDep

router = APIRouter(prefix="/kernels", tags=["packages"])


class InstallPackages(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[StrictStr] = Field(
        min_length=1,
        max_length=100,
        description='Plain requirements from the configured index, e.g. ["tabulate==0.9.0", "cffi>=1.16"].',
    )


@router.post("/{kernel_id}/packages")
async def install_packages(kernel: OwnedKernel, body: InstallPackages, service: ServiceDep) -> dict[str, Any]:
    """Fetch the packages' wheels (with their dependencies) and install them in the kernel, after the work queued
    before; importable at once, and again after a restart."""
    return await service.install_packages(kernel, body.packages)


@router.get("/{kernel_id}/packages")
async def list_packages(kernel: OwnedKernel, service: ServiceDep) -> dict[str, Any]:
    """What the kernel asked for, and the wheels fetched for it."""
    return service.installed_packages(kernel)
