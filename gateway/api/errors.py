"""Domain errors to HTTP: the status table, and the error bodies of the seed API and of Jupyter's API."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway import errors
from gateway.packages import errors as packages
from gateway.security.view_tokens import ViewTokenNotFound, ViewTokenTooLong

STATUS: dict[type[errors.JupyCellError], int] = {
    errors.KernelNotFound: 404,
    errors.CellNotFound: 404,
    errors.FileMissing: 404,
    errors.KernelSpecNotFound: 404,
    errors.CellExists: 409,
    errors.CellNumbersTaken: 409,
    errors.KernelBusy: 409,
    errors.KernelDead: 409,
    errors.VersionConflict: 409,
    errors.TooManyCells: 409,
    errors.InvalidFilePath: 400,
    errors.InvalidKernelRequest: 400,
    errors.FileTooLarge: 413,
    errors.CodeTooLarge: 413,
    errors.InvalidNotebook: 422,
    errors.FileTransferFailed: 422,
    errors.RuntimeNotAllowed: 422,
    errors.ImageNotAllowed: 422,
    errors.TooManyKernels: 429,
    errors.KernelStartFailed: 503,
    errors.SandboxUnavailable: 503,
    errors.StoreUnavailable: 503,
    packages.PackageError: 422,  # issue 13: packages on demand
    packages.InvalidPackageRequest: 422,
    packages.NoCompatibleWheel: 422,
    packages.PackageInstallFailed: 422,
    packages.PackageNotAllowed: 403,
    packages.PackageLimitExceeded: 413,
    packages.PackageNotFound: 404,
    packages.PackageConflict: 409,
    packages.PackageIndexUnreachable: 502,
    packages.PackageFetchFailed: 502,
    errors.KernelMoved: 421,  # issue 11: a stale owner's write was refused; the retry reaches the new owner
    errors.ReplicaUnreachable: 503,
    ViewTokenNotFound: 404,
    ViewTokenTooLong: 422,
}


def status_of(error: errors.JupyCellError) -> int:
    """The HTTP status of a domain error (the nearest class in the table; 500 for none)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def install(app: FastAPI) -> None:
    """Map domain and validation errors to responses, in one place."""
    app.add_exception_handler(errors.JupyCellError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]


async def _domain_error(request: Request, error: errors.JupyCellError) -> JSONResponse:
    status = status_of(error)
    body: dict[str, object] = {"detail": str(error), "error": type(error).__name__}  # typed errors in the SDK
    if isinstance(error, errors.VersionConflict):
        body["version"] = error.current
    if request.url.path.startswith("/api/"):  # Jupyter's error body: jupyter_server shows message and reason
        body |= {"message": str(error), "reason": HTTPStatus(status).phrase}
    return JSONResponse(body, status_code=status)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with one readable sentence (``detail``) and pydantic's itemised ``errors``."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"] if part not in ("body", "query", "path"))
        problems.append(f"{where}: {item['msg']}" if where else item["msg"])
    errors_ = [{k: v for k, v in item.items() if k in ("loc", "msg", "type")} for item in error.errors()]
    return JSONResponse({"detail": "Invalid request: " + "; ".join(problems), "errors": errors_}, status_code=422)
