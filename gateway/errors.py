"""Domain errors. Each carries the HTTP status it maps to; ``gateway.main`` turns them into responses."""

from __future__ import annotations


class JupyCellError(Exception):
    """Base of every error the API reports to its caller. ``str(error)`` is the message they see."""

    status_code = 500


class KernelNotFound(JupyCellError):
    status_code = 404

    def __init__(self, kernel_id: int | str, shut_down_because: str | None = None) -> None:
        if shut_down_because:
            super().__init__(f"Kernel {kernel_id} not found: it was shut down because {shut_down_because}.")
        else:
            super().__init__(f"Kernel {kernel_id} not found.")


class CellNotFound(JupyCellError):
    status_code = 404

    def __init__(self, cell_number: int) -> None:
        super().__init__(f"Cell {cell_number} not found.")


class CellExists(JupyCellError):
    status_code = 409

    def __init__(self, cell_number: int) -> None:
        super().__init__(f"Cell {cell_number} already exists; use action 'edit' to change it.")


class KernelDead(JupyCellError):
    """The kernel's container is gone or stopped; it must be restarted before it can run code."""

    status_code = 409


class KernelStartFailed(JupyCellError):
    status_code = 503


class SandboxUnavailable(JupyCellError):
    """The Docker engine cannot be reached or refused a request."""

    status_code = 503


class KernelBusy(JupyCellError):
    """The caller asked not to wait, and another run holds the kernel."""

    status_code = 409

    def __init__(self, kernel_id: int) -> None:
        super().__init__(
            f"Kernel {kernel_id} is busy running another cell; retry later or send wait: true to queue behind it."
        )


class InvalidNotebook(JupyCellError):
    """An uploaded .ipynb document that cannot be imported."""

    status_code = 422


class CellNumbersTaken(JupyCellError):
    """An imported notebook brings cell numbers the kernel already has."""

    status_code = 409


class InvalidFilePath(JupyCellError):
    """A file path that is absolute, escapes the working directory or is otherwise unusable."""

    status_code = 400


class FileMissing(JupyCellError):
    status_code = 404


class FileTooLarge(JupyCellError):
    status_code = 413


class FileTransferFailed(JupyCellError):
    """The kernel could not write or read the file (disk full, permission, not a regular file...)."""

    status_code = 422


class CodeTooLarge(JupyCellError):
    status_code = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"Code too large: {size} bytes, the limit is {limit} bytes.")


class TooManyKernels(JupyCellError):
    """A kernel limit (per API key, or of the whole gateway) is reached; shut a kernel down first."""

    status_code = 429


class RuntimeNotAllowed(JupyCellError):
    status_code = 422

    def __init__(self, runtime: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"Runtime {runtime!r} is not allowed here; allowed: {', '.join(allowed)}.")


class KernelSpecNotFound(JupyCellError):
    status_code = 404

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(f"Kernel spec {name!r} not found (available: {', '.join(available)}).")


class InvalidKernelRequest(JupyCellError):
    """A request to start a kernel that names an unknown kernel spec or an environment variable not allowed."""

    status_code = 400


class StoreUnavailable(JupyCellError):
    """The database cannot be reached or refused a write; nothing was reported as done."""

    status_code = 503


class VersionConflict(JupyCellError):
    """A change sent with ``expected_version`` found the notebook at another version; nothing was changed.

    (Added for issue 12: optimistic concurrency between writers of one kernel's notebook.)
    """

    status_code = 409

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"Version conflict: the notebook is at version {current}, not {expected}; nothing was changed. "
            "Read the cells again (GET /kernels/{id}/cells) and retry with the current version."
        )
        self.current = current
