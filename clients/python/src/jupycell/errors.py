"""Errors the gateway reports, as exceptions. Each carries the server's message, its HTTP status and its body."""

from __future__ import annotations

from typing import Any


class JupyCellError(Exception):
    """Base of every error this client raises. ``str(error)`` is the server's message."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body


class ConnectionFailed(JupyCellError):
    """The gateway could not be reached, or the HTTP request timed out (``request_timeout``)."""


class Unauthorized(JupyCellError):
    """401: no API key, or an unknown one (``api_key=`` or ``JUPYCELL_API_KEY``)."""


class NotFound(JupyCellError):
    """404: something does not exist (or belongs to another API key)."""


class KernelNotFound(NotFound):
    """The kernel does not exist, was shut down, or belongs to another API key."""


class CellNotFound(NotFound):
    pass


class FileNotFoundInKernel(NotFound):
    pass


class Conflict(JupyCellError):
    """409: the request conflicts with the kernel's current state."""


class VersionConflict(Conflict):
    """``expected_version`` did not match: someone else changed the notebook; nothing was changed.

    ``current_version`` is the notebook's version now: read the cells again, then retry with it."""

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message, status_code, body)
        self.current_version: int | None = body.get("version") if isinstance(body, dict) else None


class KernelBusy(Conflict):
    """The kernel is running something and the call asked not to wait (``wait=False``)."""


class CellExists(Conflict):
    pass


class KernelDead(Conflict):
    """The kernel died and could not be brought back; ``restart()`` it."""


class TooLarge(JupyCellError):
    """413: code, file or request body over the gateway's limit."""


class InvalidRequest(JupyCellError):
    """400/422: the gateway refused the request as invalid (bad path, bad notebook, bad argument...)."""


class RateLimited(JupyCellError):
    """429: too many requests, or too many kernels for this key or gateway."""


class ServerError(JupyCellError):
    """5xx: the gateway or its Docker engine / database failed."""


#: The gateway's error type names (the ``error`` field of its error bodies) -> exception class.
_BY_NAME: dict[str, type[JupyCellError]] = {
    "KernelNotFound": KernelNotFound,
    "CellNotFound": CellNotFound,
    "FileMissing": FileNotFoundInKernel,
    "VersionConflict": VersionConflict,
    "KernelBusy": KernelBusy,
    "CellExists": CellExists,
    "KernelDead": KernelDead,
}
_BY_STATUS: dict[int, type[JupyCellError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidRequest,
    429: RateLimited,
}


def error_for(status_code: int, body: Any, fallback_text: str = "") -> JupyCellError:
    """The exception for an error response of the gateway."""
    message = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(message, str):
        message = fallback_text or f"HTTP {status_code}"
    name = body.get("error") if isinstance(body, dict) else None
    cls = (
        _BY_NAME.get(name or "")
        or _BY_STATUS.get(status_code)
        or (ServerError if status_code >= 500 else JupyCellError)
    )
    return cls(message, status_code, body)
