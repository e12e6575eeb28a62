"""JupyCell's ``%pip`` magic inside a kernel: installs, offline, the wheels the gateway fetched for this cell.

The kernel container has no network. Before the gateway sends a cell it reads the cell's ``%pip install ...`` (and
``!pip install ...``) lines, fetches those packages' wheels for this kernel's platform into the read-only
``/run/jupycell-wheels`` and records there (``manifest.json``) which wheels each requirement resolved to. This
magic then installs them into ``/opt/jupycell-packages`` (a tmpfs), whose site directory is on ``sys.path``: the
import works at once. Wheels the manifest names are unpacked with pypa/installer (milliseconds); anything else
goes to pip, configured in ``/opt/venv/pip.conf`` (no index, those wheels only). A failure raises
``PackageInstallError``, so the cell stops there with an error. The gateway calls ``install`` too (its packages
endpoint, and reinstalling after a restart).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shlex
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable

PREFIX = "/opt/jupycell-packages"
WHEELS = "/run/jupycell-wheels"
SCHEME = sysconfig.get_paths("posix_prefix", vars={"base": PREFIX, "platbase": PREFIX})
SITE_DIR = SCHEME["purelib"]
QUIET_OPTIONS = {"-q", "-qq", "-qqq", "--quiet", "-U", "--upgrade", "--no-cache-dir", "-v", "--verbose"}
QUIET_OPTIONS |= {"--disable-pip-version-check", "--no-input", "--progress-bar=off"}
HINT = (
    "This kernel has no network: pip installs only packages the gateway fetched for it. Ask for one with a line "
    "'%pip install NAME' in a cell (fetched before the cell runs) or POST /kernels/{id}/packages "
    '{"packages": ["NAME"]}.'
)


class PackageInstallError(Exception):
    """A pip command in a cell failed."""


def install(words: list[str]) -> str:
    """``pip install WORDS``, offline; the output. Raises PackageInstallError if it fails."""
    wheels = _fetched_wheels(words)
    if wheels is None:
        return _pip(["install", *words])
    lines, installed = [], []
    for path in wheels:
        name, version = os.path.basename(path).split("-")[:2]
        try:
            present = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            present = None
        if present == version:
            lines.append(f"Requirement already satisfied: {name}=={version}")
        elif present is not None:
            return _pip(["install", *words])  # another version: pip replaces it properly
        else:
            _unpack(path)
            installed.append(f"{name}-{version}")
    _refresh()
    if installed:
        lines.append(f"Successfully installed {' '.join(installed)}")
    return "\n".join(lines) + "\n"


def _fetched_wheels(words: list[str]) -> list[str] | None:
    """The wheel files the gateway fetched for these requirements (manifest.json), in install order; None when
    the manifest does not know one of them (or an option other than a quiet one is given): then pip decides."""
    try:
        from packaging.requirements import Requirement

        with open(os.path.join(WHEELS, "manifest.json")) as f:
            manifest = json.load(f)
        files: list[str] = []
        for word in words:
            if word in QUIET_OPTIONS:
                continue
            for filename in manifest[str(Requirement(word))]:
                if filename not in files:
                    files.append(filename)
    except Exception:  # noqa: BLE001 - no manifest, unknown requirement, odd word: pip handles it
        return None
    return [os.path.join(WHEELS, filename) for filename in files]


def _unpack(path: str) -> None:
    from installer import install as install_wheel
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    destination = SchemeDictionaryDestination(
        {
            "purelib": SCHEME["purelib"],
            "platlib": SCHEME["platlib"],
            "headers": SCHEME["include"],
            "scripts": SCHEME["scripts"],
            "data": SCHEME["data"],
        },
        interpreter=sys.executable,
        script_kind="posix",
    )
    with WheelFile.open(path) as source:
        install_wheel(source, destination, additional_metadata={"INSTALLER": b"jupycell\n"})


def with_hint(main: Callable[[], int]) -> int:
    """pip's ``python -m pip`` entry point in this image: pip, then the hint on stderr if it failed."""
    status = main()
    if status and os.environ.get("JUPYCELL_PIP_HINT") != "0":
        print(f"JupyCell: {HINT}", file=sys.stderr)
    return status


def _pip(args: list[str]) -> str:
    process = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "JUPYCELL_PIP_HINT": "0"},  # the error raised below says it
    )
    if args[:1] == ["install"]:
        _refresh()
    if process.returncode != 0:
        raise PackageInstallError(
            f"{process.stdout[-3000:]}\npip {args[0]} failed (exit code {process.returncode}). {HINT}"
        )
    return process.stdout


def _refresh() -> None:
    importlib.invalidate_caches()
    if SITE_DIR not in sys.path:
        site.addsitedir(SITE_DIR)


def pip(line: str) -> None:
    """The ``%pip`` line magic: ``install`` as above, other subcommands (list, show, ...) through pip."""
    args = shlex.split(line)
    output = install(args[1:]) if args[:1] == ["install"] else _pip(args or ["--help"])
    print(output, end="")


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 (IPython's shell)
    ipython.register_magic_function(pip, "line", "pip")
