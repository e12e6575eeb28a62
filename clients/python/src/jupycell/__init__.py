"""JupyCell's Python client: stateful, sandboxed Jupyter kernels over HTTP.

from jupycell import Client
with Client() as client, client.start_kernel() as kernel:
    print(kernel.execute("1 + 1").text)
"""

from jupycell.aio import AsyncClient, AsyncExecutionStream, AsyncKernel
from jupycell.client import Client, ExecutionStream, Kernel
from jupycell.errors import (
    CellExists,
    CellNotFound,
    Conflict,
    ConnectionFailed,
    FileNotFoundInKernel,
    InvalidRequest,
    JupyCellError,
    KernelBusy,
    KernelDead,
    KernelNotFound,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    VersionConflict,
)
from jupycell.models import Cell, Cells, Execution, ExecutionError, KernelInfo, Output, Result

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncExecutionStream",
    "AsyncKernel",
    "Cell",
    "CellExists",
    "CellNotFound",
    "Cells",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Execution",
    "ExecutionError",
    "ExecutionStream",
    "FileNotFoundInKernel",
    "InvalidRequest",
    "JupyCellError",
    "Kernel",
    "KernelBusy",
    "KernelDead",
    "KernelInfo",
    "KernelNotFound",
    "NotFound",
    "Output",
    "RateLimited",
    "Result",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "VersionConflict",
]
