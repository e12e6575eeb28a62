"""Why a package request failed. Each error has the exception name a cell's ``error`` output shows (``%pip
install`` lines); its HTTP status (``POST /kernels/{id}/packages``) is in ``gateway.api.errors``' table."""

from __future__ import annotations

from gateway.errors import JupyCellError


class PackageError(JupyCellError):
    """Base of every package failure; ``str(error)`` is the sentence the user sees."""

    ename = "PackageInstallError"


class InvalidPackageRequest(PackageError):
    """Not a plain requirement (URL, path, option, metacharacters...)."""

    ename = "InvalidPackageRequest"


class PackageNotAllowed(PackageError):
    """The policy (packages off, allow-list, deny-list) refuses it; the message names the rule."""

    ename = "PackageNotAllowed"


class PackageLimitExceeded(PackageError):
    """A cap on packages or bytes, per request or per kernel; the message names the setting."""

    ename = "PackageLimitExceeded"


class PackageNotFound(PackageError):
    ename = "PackageNotFound"


class NoCompatibleWheel(PackageError):
    """Only an sdist, or wheels for other platforms/Pythons: JupyCell does not build packages."""

    ename = "NoCompatibleWheel"


class PackageConflict(PackageError):
    """The resolver found no set of versions compatible with the image's preinstalled packages."""

    ename = "PackageConflict"


class PackageIndexUnreachable(PackageError):
    ename = "PackageIndexUnreachable"


class PackageFetchFailed(PackageError):
    """Anything else that went wrong while fetching (helper container, deadline, unexpected pip error)."""

    ename = "PackageFetchFailed"


class PackageInstallFailed(PackageError):
    """The wheels were fetched but pip in the kernel could not install them."""

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
