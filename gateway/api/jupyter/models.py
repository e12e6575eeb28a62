"""Jupyter's view of JupyCell's kernels: the kernel model, the create request and its env policy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.api.jupyter.specs import spec_name, spec_runtime
from gateway.errors import InvalidKernelRequest, KernelSpecNotFound
from gateway.kernels.kernel import Kernel
from gateway.settings import Settings

log = logging.getLogger(__name__)

MAX_ENV_VALUE = 32 * 1024


class KernelCreate(BaseModel):
    """``POST /api/kernels`` body. Other fields clients send (``path``) are ignored."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, description="Kernel spec name; default: the default spec.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment of the kernel (allowed names only).")


def parse_create(raw: bytes) -> KernelCreate:
    """The ``POST /api/kernels`` body (empty: defaults); RequestValidationError (422) if it is not one."""
    if not raw.strip():
        return KernelCreate()
    try:
        return KernelCreate.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors()]) from None


def timestamp(seconds: float) -> str:
    """ISO 8601 in UTC with microseconds and ``Z``: the one format jupyter_server parses."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kernel_model(kernel: Kernel, connections: int, settings: Settings) -> dict[str, Any]:
    """The Jupyter kernel model; ``kernel_id`` is the same kernel's id in the seed API."""
    return {
        "id": kernel.uuid,
        "name": spec_name(kernel.runtime, settings, kernel.image),
        "last_activity": timestamp(kernel.last_activity),
        "execution_state": kernel.state,
        "connections": connections,
        "kernel_id": kernel.id,
    }


def check_request(request: KernelCreate, settings: Settings) -> tuple[str, dict[str, str]]:
    """Check the kernel spec name and the environment; return the kernel's runtime and the environment to set in
    its container.

    Names in ``jupyter_allowed_env`` are kept. ``KERNEL_*`` names not allowed are dropped: they are hints to a
    gateway (jupyter_server sends ``KERNEL_USERNAME`` and ``KERNEL_WORKING_DIR`` by itself) that JupyCell does not
    use. Any other name is refused, naming it.
    """
    try:
        runtime = spec_runtime(request.name, settings) if request.name is not None else settings.runtime
    except KernelSpecNotFound as error:
        raise InvalidKernelRequest(str(error).replace("not found", "unknown", 1)) from None
    allowed = settings.jupyter_env_names
    refused = sorted(k for k in request.env if k not in allowed and not k.startswith("KERNEL_"))
    if refused:
        names = ", ".join(sorted(allowed)) or "none"
        raise InvalidKernelRequest(
            f"Environment variable(s) not allowed: {', '.join(refused)} (allowed: {names}; "
            "the operator sets JUPYCELL_JUPYTER_ALLOWED_ENV)."
        )
    bad = sorted(k for k in allowed & request.env.keys() if len(v := request.env[k]) > MAX_ENV_VALUE or "\0" in v)
    if bad:
        raise InvalidKernelRequest(
            f"Environment value(s) longer than {MAX_ENV_VALUE} characters or holding NUL: {', '.join(bad)}."
        )
    ignored = sorted(k for k in request.env if k not in allowed)
    if ignored:
        log.info("new kernel: ignoring gateway hints %s", ", ".join(ignored))
    return runtime, {k: v for k, v in request.env.items() if k in allowed}
