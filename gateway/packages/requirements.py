"""Package requests as users write them: requirement strings, and the ``%pip install`` lines of a cell.

Pure functions, no I/O. Only plain requirements pass: a project name, optional extras and version specifiers
(``tabulate``, ``cffi>=1.16``, ``requests[socks]==2.32.3``). URLs, paths, files, VCS links, ``-r``/``--index-url``
and other options, environment markers and shell or IPython expansion characters are refused with
``InvalidPackageRequest`` (422) naming what was wrong.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from gateway.packages.errors import InvalidPackageRequest

MAX_REQUIREMENT_CHARS = 200

# Options of `pip install` that change nothing about what is fetched or from where; everything else is refused.
HARMLESS_OPTIONS = frozenset({"-q", "-qq", "-qqq", "--quiet", "-U", "--upgrade", "--no-cache-dir", "-v", "--verbose"})
HARMLESS_OPTIONS |= {"--disable-pip-version-check", "--no-input", "--progress-bar=off"}

# Expansion in IPython magics ({var}, $var) and shells ($, `...`); command separators, redirections and globs.
_EXPANSION = re.compile(r"[${}`]")
_SHELL_OPERATORS = frozenset(";&|<>()\n\r")
_NOT_IN_REQUIREMENTS = frozenset(";&|()\n\r\\")  # < and > are version specifiers
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".egg")

# `%pip install ...`, `!pip install ...`, `!pip3 install`, `!python -m pip install`, `!python3 -m pip install`,
# and IPython's `!{sys.executable} -m pip install` (refused below: `{`).
_PIP_LINE = re.compile(
    r"""^\s*(?P<kind>%|!)\s*
        (?:(?:python(?:3(?:\.\d+)?)?|\{sys\.executable\})\s+-m\s+)?
        (?P<pip>pip(?:3(?:\.\d+)?)?)
        (?:\s+(?P<args>.*))?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class PackageRequest:
    """One plain requirement a user asked for: its canonical project name and the string pip gets."""

    name: str  # canonical (PEP 503): lower case, runs of -_. as one -
    requirement: str  # normalised, e.g. "cffi>=1.16" or "requests[socks]==2.32.3"


@dataclass(frozen=True)
class PipLine:
    """A ``%pip``/``!pip`` line of a cell: its 1-based line number and, for ``install``, the requests."""

    line_number: int
    text: str
    command: str  # "install", "list", ...: pip's subcommand ("" when none)
    requests: tuple[PackageRequest, ...]


def parse_requirement(text: str) -> PackageRequest:
    """A plain requirement, or InvalidPackageRequest saying why ``text`` is not one."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidPackageRequest("Empty package name: give a requirement such as 'tabulate' or 'cffi>=1.16'.")
    text = text.strip()
    shown = text[:60] + ("…" if len(text) > 60 else "")
    if len(text) > MAX_REQUIREMENT_CHARS:
        raise InvalidPackageRequest(f"Requirement {shown!r} is too long (over {MAX_REQUIREMENT_CHARS} characters).")
    if text.startswith("-"):
        raise InvalidPackageRequest(
            f"{shown!r} is a pip option, not a package: options such as -r, -e, --index-url, --find-links or "
            "--extra-index-url are not accepted (packages come from the gateway's configured index only)."
        )
    if _EXPANSION.search(text) or any(c in _NOT_IN_REQUIREMENTS for c in text):
        raise InvalidPackageRequest(
            f"Requirement {shown!r} contains shell or IPython metacharacters ($ {{ }} ` ; & | ( ) \\); "
            "give a plain requirement such as 'tabulate==0.9.0'."
        )
    if "://" in text or text.startswith(("git+", "hg+", "svn+", "bzr+", "file:")):
        raise InvalidPackageRequest(f"{shown!r} is a URL or VCS link: only package names from the index are accepted.")
    if "/" in text or text.startswith(".") or text.startswith("~") or text.lower().endswith(_ARCHIVE_SUFFIXES):
        raise InvalidPackageRequest(f"{shown!r} looks like a local path or file: only package names are accepted.")
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        raise InvalidPackageRequest(f"{shown!r} is not a valid requirement: {error}.") from None
    if requirement.url:
        raise InvalidPackageRequest(f"{shown!r} names a URL (@ ...): only package names from the index are accepted.")
    if requirement.marker is not None:
        raise InvalidPackageRequest(f"{shown!r} has an environment marker (; ...): give a plain requirement.")
    return PackageRequest(canonicalize_name(requirement.name), str(requirement))


def parse_requirements(texts: list[str]) -> list[PackageRequest]:
    """Every string a plain requirement, each project named once (InvalidPackageRequest otherwise)."""
    requests = [parse_requirement(text) for text in texts]
    seen: set[str] = set()
    for request in requests:
        if request.name in seen:
            raise InvalidPackageRequest(f"Package {request.name!r} is named twice in one request.")
        seen.add(request.name)
    return requests


def pip_lines(code: str) -> list[PipLine]:
    """The ``%pip``/``!pip`` lines of a cell, in order. ``install`` lines carry their parsed requests; any
    option but a few harmless ones (-q, -U, ...) and anything not a plain requirement raise
    InvalidPackageRequest, naming the line."""
    found = []
    for number, text in enumerate(code.splitlines(), start=1):
        match = _PIP_LINE.match(text)
        if match is None:
            continue
        found.append(_pip_line(number, text.strip(), match.group("kind"), match.group("args") or ""))
    return found


def _pip_line(number: int, text: str, kind: str, args: str) -> PipLine:
    where = f"line {number} ({text[:80]!r})"
    if _EXPANSION.search(text):
        raise InvalidPackageRequest(
            f"{where}: $, {{ }} and ` are not accepted in a pip line (no variable or command expansion)."
        )
    if kind == "!" and any(c in _SHELL_OPERATORS for c in _unquoted(args)):
        raise InvalidPackageRequest(
            f"{where}: shell metacharacters (; & | < > ( )) are not accepted in a pip line; quote version "
            "specifiers, e.g. !pip install 'cffi>=1.16'."
        )
    try:
        words = shlex.split(args)
    except ValueError as error:
        raise InvalidPackageRequest(f"{where}: {error}.") from None
    command = words[0] if words else ""
    if command != "install":
        return PipLine(number, text, command, ())
    requirements = []
    for word in words[1:]:
        if word.startswith("-"):
            if word not in HARMLESS_OPTIONS:
                raise InvalidPackageRequest(
                    f"{where}: pip option {word!r} is not accepted; packages come from the gateway's configured "
                    f"index only (accepted options: {', '.join(sorted(HARMLESS_OPTIONS))})."
                )
            continue
        requirements.append(word)
    if not requirements:
        raise InvalidPackageRequest(f"{where}: no package named.")
    try:
        requests = parse_requirements(requirements)
    except InvalidPackageRequest as error:
        raise InvalidPackageRequest(f"{where}: {error}") from None
    return PipLine(number, text, command, tuple(requests))


def _unquoted(text: str) -> str:
    """``text`` with its single- and double-quoted parts removed (what a POSIX shell would interpret)."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", "", text)
