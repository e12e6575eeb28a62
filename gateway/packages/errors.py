"""Why a package request failed. Each error has its HTTP status (``POST /kernels/{id}/packages``) and the
exception name a cell's ``error`` output shows (``%pip install`` lines)."""

from __future__ import annotations

from gateway.errors import JupyCellError


class PackageError(JupyCellError):
    """Base of every package failure; ``str(error)`` is the sentence the user sees."""

    status_code = 422
    ename = "PackageInstallError"


class InvalidPackageRequest(PackageError):
    """Not a plain requirement (URL, path, option, metacharacters...)."""

    status_code = 422
    ename = "InvalidPackageRequest"


class PackageNotAllowed(PackageError):
    """The policy (packages off, allow-list, deny-list) refuses it; the message names the rule."""

    status_code = 403
    ename = "PackageNotAllowed"


class PackageLimitExceeded(PackageError):
    """A cap on packages or bytes, per request or per kernel; the message names the setting."""

    status_code = 413
    ename = "PackageLimitExceeded"


class PackageNotFound(PackageError):
    status_code = 404
    ename = "PackageNotFound"


class NoCompatibleWheel(PackageError):
    """Only an sdist, or wheels for other platforms/Pythons: JupyCell does not build packages."""

    status_code = 422
    ename = "NoCompatibleWheel"


class PackageConflict(PackageError):
    """The resolver found no set of versions compatible with the image's preinstalled packages."""

    status_code = 409
    ename = "PackageConflict"


class PackageIndexUnreachable(PackageError):
    status_code = 502
    ename = "PackageIndexUnreachable"


class PackageFetchFailed(PackageError):
    """Anything else that went wrong while fetching (helper container, deadline, unexpected pip error)."""

    status_code = 502
    ename = "PackageFetchFailed"


class PackageInstallFailed(PackageError):
    """The wheels were fetched but pip in the kernel could not install them."""

    status_code = 422
    ename = "PackageInstallError"


#: The helper's failure kinds (see ``gateway.packages.helper_script``) and the error each becomes.
BY_KIND: dict[str, type[PackageError]] = {
    "not_found": PackageNotFound,
    "no_wheel": NoCompatibleWheel,
    "sdist_only": NoCompatibleWheel,
    "conflict": PackageConflict,
    "unreachable": PackageIndexUnreachable,
    "too_large": PackageLimitExceeded,
    "denied": PackageNotAllowed,
}
