"""Request and response bodies of the seed API (``/start``, ``/cell``, ``/cell_outputs``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CellNumber = Annotated[int, Field(ge=0, le=10**9, description="The cell's number; cells run in ascending order.")]
KernelId = Annotated[int, Field(description="The id /start returned.")]
Timeout = Annotated[
    float | None, Field(None, gt=0, description="Deadline of each cell run in seconds (default: the server's).")
]


class _CellRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kernel_id: KernelId


class AddCell(_CellRequest):
    action: Literal["add"]
    cell_number: CellNumber
    code: str


class EditCell(_CellRequest):
    action: Literal["edit"]
    cell_number: CellNumber
    code: str


class RunCell(_CellRequest):
    action: Literal["run"]
    cell_number: CellNumber
    timeout: Timeout = None


class RunAll(_CellRequest):
    action: Literal["run_all"]
    timeout: Timeout = None


class DeleteCell(_CellRequest):
    action: Literal["delete"]
    cell_number: CellNumber


CellRequest = Annotated[AddCell | EditCell | RunCell | RunAll | DeleteCell, Field(discriminator="action")]


class StartResponse(BaseModel):
    kernel_id: int


class StatusResponse(BaseModel):
    status: str


class RunResponse(BaseModel):
    """Outputs in nbformat v4 shapes, and how the run ended."""

    outputs: list[dict[str, Any]]
    status: Literal["ok", "error", "timeout", "died"]
    execution_count: int | None = None
    truncated: bool = False
    detail: str | None = None
    kernel_state_kept: bool = True


class CellRunOutputs(BaseModel):
    cell_number: int
    outputs: list[dict[str, Any]]
    status: str
    execution_count: int | None = None


class RunAllResponse(BaseModel):
    outputs: list[CellRunOutputs]
    status: Literal["ok", "error", "timeout", "died"]
    failed_cell: int | None = Field(None, description="The cell that stopped the run, if one did.")
    detail: str | None = None


class CellOutputsResponse(BaseModel):
    outputs: list[dict[str, Any]]
    status: str | None = Field(None, description="How the cell's last run ended; null if it never ran.")
    execution_count: int | None = None
