"""Request and response bodies of the seed API (``/start``, ``/cell``, ``/cell_outputs``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CellNumber = Annotated[int, Field(ge=0, le=10**9, description="The cell's number; cells run in ascending order.")]
KernelId = Annotated[int, Field(description="The id /start returned.")]
Timeout = Annotated[
    float | None, Field(None, gt=0, description="Deadline of each cell run in seconds (default: the server's).")
]
Wait = Annotated[
    bool,
    Field(True, description="Queue behind a run already in progress on this kernel; false: fail at once with 409."),
]
StripAnsi = Annotated[bool, Field(False, description="Remove ANSI colour codes from tracebacks and stream text.")]
# Issue 12: optimistic concurrency on the notebook's cells.
ExpectedVersion = Annotated[
    int | None,
    Field(
        None,
        ge=0,
        description="Only apply the change if the notebook is at this version (from any cell response or listing); "
        "otherwise 409 with the current version and nothing changed.",
    ),
]


class _CellRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    kernel_id: KernelId


class AddCell(_CellRequest):
    action: Literal["add"]
    cell_number: CellNumber
    code: str
    expected_version: ExpectedVersion = None


class EditCell(_CellRequest):
    action: Literal["edit"]
    cell_number: CellNumber
    code: str
    expected_version: ExpectedVersion = None


class RunCell(_CellRequest):
    action: Literal["run"]
    cell_number: CellNumber
    timeout: Timeout = None
    wait: Wait = True
    strip_ansi: StripAnsi = False
    with_dependencies: bool = Field(
        False, description="First re-run, in order, the stale or never-run cells this cell depends on."
    )


class RunAll(_CellRequest):
    action: Literal["run_all"]
    timeout: Timeout = None
    wait: Wait = True
    strip_ansi: StripAnsi = False


class RunStale(_CellRequest):
    """Bring the notebook up to date: run, in order, every stale or never-run cell."""

    action: Literal["run_stale"]
    timeout: Timeout = None
    wait: Wait = True
    strip_ansi: StripAnsi = False


class DeleteCell(_CellRequest):
    action: Literal["delete"]
    cell_number: CellNumber
    expected_version: ExpectedVersion = None


CellRequest = Annotated[AddCell | EditCell | RunCell | RunAll | RunStale | DeleteCell, Field(discriminator="action")]


class StartRequest(BaseModel):
    """Optional body of ``POST /start``."""

    model_config = ConfigDict(extra="forbid")
    runtime: str | None = Field(
        None, max_length=64, description="Container runtime for this kernel, e.g. 'runsc' (gVisor), if allowed."
    )
    image: str | None = Field(
        None, max_length=256, description="Sandbox image for this kernel, if allowed (JUPYCELL_ALLOWED_IMAGES)."
    )


class StartResponse(BaseModel):
    kernel_id: int


class StatusResponse(BaseModel):
    status: str
    version: int | None = Field(None, description="The notebook's version after the change (issue 12).")


class RunUsage(BaseModel):
    """Resource use of one run (issue 14); null where the engine's cgroups are not readable from the gateway."""

    peak_memory_bytes: int | None = Field(None, description="Peak memory of the kernel's container during the run.")
    cpu_seconds: float | None = Field(None, description="CPU time the container used during the run.")
    peak_scope: str | None = Field(
        None, description="'run': peak reset when the run began; 'container': peak since the container started."
    )


class RunRecord(BaseModel):
    """When and how a cell's last run went."""

    execution_count: int | None = None
    started: str | None = Field(None, description="Start of the run, ISO 8601 UTC.")
    ended: str | None = Field(None, description="End of the run, ISO 8601 UTC.")
    duration: float | None = Field(None, description="Seconds the run took.")
    stale: bool = Field(False, description="Code this cell depends on (or its own) changed since it ran.")
    usage: RunUsage | None = Field(None, description="The run's resource use, from the kernel container's cgroup.")


class CellRunOutputs(RunRecord):
    cell_number: int
    outputs: list[dict[str, Any]]
    status: str
    truncated: bool = False
    detail: str | None = None


class RunResponse(RunRecord):
    """Outputs in nbformat v4 shapes, and how the run ended."""

    outputs: list[dict[str, Any]]
    status: Literal["ok", "error", "timeout", "died"]
    truncated: bool = False
    detail: str | None = None
    kernel_state_kept: bool = True
    cell_number: int | None = None
    version: int | None = Field(None, description="The notebook's version (issue 12).")
    dependency_runs: list[CellRunOutputs] = Field(
        default_factory=list, description="With with_dependencies: the runs of the cells it depends on, in order."
    )


class RunAllResponse(BaseModel):
    outputs: list[CellRunOutputs]
    status: Literal["ok", "error", "timeout", "died"]
    failed_cell: int | None = Field(None, description="The cell that stopped the run, if one did.")
    detail: str | None = None
    version: int | None = Field(None, description="The notebook's version (issue 12).")


class CellOutputsResponse(RunRecord):
    outputs: list[dict[str, Any]]
    status: str | None = Field(None, description="How the cell's last run ended; null if it never ran.")
