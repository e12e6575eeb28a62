"""Installing fetched wheels inside a kernel, through the kernel itself (a silent ``user_expressions`` request,
as file transfers do): the image's ``jupycell_pip.install`` (the code behind ``%pip install``) installs them
offline into the kernel's packages tmpfs, whose site directory is on ``sys.path``: importable at once."""

from __future__ import annotations

import ast

from gateway.errors import KernelCodeError, KernelGone, KernelUnresponsive
from gateway.kernels.ports import KernelConnection
from gateway.packages.errors import PackageInstallFailed

#: Where the kernel's wheel directory is mounted (read-only) in its container; pip.conf's find-links.
CONTAINER_WHEEL_DIR = "/run/jupycell-wheels"
#: The tmpfs packages are installed into (its site directory is on the kernel's sys.path).
CONTAINER_PACKAGES_DIR = "/opt/jupycell-packages"


async def install_in_kernel(client: KernelConnection, requirements: list[str], timeout: float) -> str:
    """Install ``requirements`` in the kernel; the installer's output. PackageInstallFailed if it fails."""
    expression = f"__import__('jupycell_pip').install({requirements!r})"
    try:
        text = await client.evaluate(expression, timeout)
    except (KernelUnresponsive, KernelGone) as error:
        raise PackageInstallFailed(
            f"the kernel did not finish installing {', '.join(requirements)} (JUPYCELL_PACKAGE_INSTALL_TIMEOUT "
            f"{timeout:g} s): {error}"
        ) from None
    except KernelCodeError as error:
        raise PackageInstallFailed(f"the kernel could not install {', '.join(requirements)}:\n{error.evalue}") from None
    return str(ast.literal_eval(text))
