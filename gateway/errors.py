"""Domain errors: what went wrong, in words a caller can act on (``str(error)``), with the facts as fields.

They carry no HTTP status: ``gateway.api.errors`` maps them. The protocol errors at the end are the core's own
vocabulary for a kernel that does not answer or is gone; they never reach a caller as such.
"""

from __future__ import annotations


class JupyCellError(Exception):
    """Base of every error the API reports to its caller. ``str(error)`` is the message they see."""


class KernelNotFound(JupyCellError):
    def __init__(self, kernel_id: int | str, gone_because: str | None = None) -> None:
        self.kernel_id, self.gone_because = kernel_id, gone_because
        if gone_because:
            super().__init__(f"Kernel {kernel_id} not found: it was shut down because {gone_because}.")
        else:
            super().__init__(f"Kernel {kernel_id} not found.")


class CellNotFound(JupyCellError):
    def __init__(self, cell_number: int) -> None:
        self.cell_number = cell_number
        super().__init__(f"Cell {cell_number} not found.")


class CellExists(JupyCellError):
    def __init__(self, cell_number: int) -> None:
        self.cell_number = cell_number
        super().__init__(f"Cell {cell_number} already exists; use action 'edit' to change it.")


class KernelDead(JupyCellError):
    """The kernel's container is gone or stopped; it must be restarted before it can run code."""

    def __init__(self, kernel_id: int, cause: str | None) -> None:
        self.kernel_id, self.cause = kernel_id, cause
        super().__init__(f"Kernel {kernel_id} is dead ({cause}); restart it.")


class KernelStartFailed(JupyCellError):
    """A kernel's container could not be started or its kernel did not answer."""


class SandboxUnavailable(JupyCellError):
    """The container engine cannot be reached or refused a request."""


class KernelBusy(JupyCellError):
    """The caller asked not to wait, and other work holds the kernel."""

    def __init__(self, kernel_id: int) -> None:
        self.kernel_id = kernel_id
        super().__init__(
            f"Kernel {kernel_id} is busy running another cell; retry later or send wait: true to queue behind it."
        )


class InvalidNotebook(JupyCellError):
    """An uploaded .ipynb document that cannot be imported."""


class CellNumbersTaken(JupyCellError):
    """An imported notebook brings cell numbers the kernel already has."""


class InvalidFilePath(JupyCellError):
    """A file path that is absolute, escapes the working directory or is otherwise unusable."""


class FileMissing(JupyCellError):
    pass


class FileTooLarge(JupyCellError):
    pass


class FileTransferFailed(JupyCellError):
    """The kernel could not write or read the file (disk full, permission, not a regular file...)."""


class CodeTooLarge(JupyCellError):
    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"Code too large: {size} bytes, the limit is {limit} bytes.")


class TooManyKernels(JupyCellError):
    """A kernel limit (per API key, or of the whole gateway) is reached; shut a kernel down first."""


class RuntimeNotAllowed(JupyCellError):
    def __init__(self, runtime: str, allowed: tuple[str, ...]) -> None:
        self.runtime, self.allowed = runtime, allowed
        super().__init__(f"Runtime {runtime!r} is not allowed here; allowed: {', '.join(allowed)}.")


class ImageNotAllowed(JupyCellError):
    """A kernel image that is not on the allow-list (JUPYCELL_ALLOWED_IMAGES, issue 13)."""

    def __init__(self, image: str, allowed: tuple[str, ...]) -> None:
        self.image, self.allowed = image, allowed
        super().__init__(
            f"Image {image!r} is not allowed here; allowed: {', '.join(allowed)} (JUPYCELL_ALLOWED_IMAGES)."
        )


class KernelSpecNotFound(JupyCellError):
    def __init__(self, name: str, available: list[str]) -> None:
        self.name, self.available = name, available
        super().__init__(f"Kernel spec {name!r} not found (available: {', '.join(available)}).")


class InvalidKernelRequest(JupyCellError):
    """A request to start a kernel that names an unknown kernel spec or an environment variable not allowed."""


class StoreUnavailable(JupyCellError):
    """The database cannot be reached or refused a write; nothing was reported as done."""


class TooManyCells(JupyCellError):
    """A kernel holds as many cells as ``max_cells`` allows (JUPYCELL_MAX_CELLS); delete some first."""

    def __init__(self, cells: int, limit: int, adding: int = 1) -> None:
        bringing = f" and this request adds {adding}" if adding != 1 else ""
        super().__init__(
            f"Too many cells: this kernel has {cells} cells{bringing}, the limit is {limit} (JUPYCELL_MAX_CELLS); "
            "delete cells or use another kernel."
        )
        self.cells, self.limit, self.adding = cells, limit, adding


class VersionConflict(JupyCellError):
    """A change sent with ``expected_version`` found the notebook at another version; nothing was changed."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"Version conflict: the notebook is at version {current}, not {expected}; nothing was changed. "
            "Read the cells again (GET /kernels/{id}/cells) and retry with the current version."
        )
        self.current = current


class KernelMoved(JupyCellError):
    """Issue 11: this replica no longer serves the kernel (another replica adopted it while this one was silent);
    its write was refused and nothing was changed. The request can be sent again: it reaches the new owner."""

    def __init__(self, kernel_id: int) -> None:
        super().__init__(
            f"Kernel {kernel_id} is now served by another gateway replica (this one lost its lease); nothing was "
            "changed here. Send the request again."
        )
        self.kernel_id = kernel_id


class ReplicaUnreachable(JupyCellError):
    """Issue 11: the replica serving the kernel did not answer a forwarded request (it may just have died: its
    kernels are adopted once its lease expires)."""


# --- the kernel protocol's own errors (handled by the core) --------------------------------------------------


class KernelUnresponsive(Exception):
    """The kernel did not answer in time (not started, or stuck even after an interrupt)."""


class KernelGone(Exception):
    """The kernel's container died (or the kernel was shut down) while we waited for it."""


class KernelCodeError(Exception):
    """Code the gateway itself sent to the kernel raised ``ename: evalue``."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue
