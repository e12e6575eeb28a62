"""The program the package fetch helper container runs (``python -c <this file> <json arguments>``).

It runs in a throwaway container of the kernel's own image (same Python, platform and preinstalled packages),
the only one with network, with no capabilities, a read-only root and limits. It never runs package code: pip
resolves wheels only (``--only-binary=:all:``), reading their metadata, against the image's preinstalled packages
(pinned as constraints, so a clash is a resolver conflict, not a silent upgrade); then the wheels pip would
install are requested together and their announced sizes checked against the byte cap before any body byte is
read, then downloaded into ``/out`` and checked against the index's
sha256. ``/out/result.json`` says what came of it: ``{"ok": true, "wheels": [...]}`` or
``{"ok": false, "kind": ..., "message": ..., "name": ...}`` with kind one of ``not_found``, ``no_wheel``,
``sdist_only``, ``conflict``, ``unreachable``, ``too_large``, ``denied``, ``failed``.

Standard library, pip and ``packaging`` only (all in the sandbox image); it must not import the gateway. The
gateway's unit tests import the pure functions (``classify``, ``wheels_from_report``, ``choose_failure``).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from typing import Any

OUT = "/out"
CA_FILE = "/etc/jupycell/ca.pem"
CHUNK = 1 << 16

_UNREACHABLE = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Max retries exceeded",
    "Could not fetch URL",
    "ProxyError",
    "SSLError",
    "CERTIFICATE_VERIFY_FAILED",
    "ConnectTimeoutError",
    "Read timed out",
    "Connection refused",
    "Network is unreachable",
)
_CONFLICT = ("ResolutionImpossible", "conflicting dependencies", "The conflict is caused by")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: ([^)]*)\)")
_NO_DISTRIBUTION = re.compile(r"No matching distribution found for (\S+)")


def classify(output: str) -> dict[str, Any]:
    """What a failed ``pip install --dry-run`` said, as ``{"kind", "requirement", "versions", "detail"}``.

    ``kind``: ``unreachable``, ``conflict``, ``no_version`` (the index has no wheel version that fits: not found,
    or sdist-only, or no wheel for this platform — the index tells which), or ``failed``."""
    errors = [line for line in output.splitlines() if line.startswith("ERROR") or "error" in line.lower()]
    detail = "\n".join(errors[-12:]) or output[-2000:]
    if any(marker in output for marker in _CONFLICT):
        lines = output.splitlines()
        start = next((i for i, line in enumerate(lines) if "conflict is caused by" in line), None)
        if start is not None:
            detail = "\n".join(line.strip() for line in lines[start : start + 8] if line.strip())
        return {"kind": "conflict", "requirement": None, "versions": [], "detail": detail}
    match = _NO_VERSION.search(output)
    if match is None and any(marker in output for marker in _UNREACHABLE):
        return {"kind": "unreachable", "requirement": None, "versions": [], "detail": detail}
    if match is not None:
        versions = [v.strip() for v in match.group(2).split(",") if v.strip() and v.strip() != "none"]
        if not versions and any(marker in output for marker in _UNREACHABLE):
            return {"kind": "unreachable", "requirement": match.group(1), "versions": [], "detail": detail}
        return {"kind": "no_version", "requirement": match.group(1), "versions": versions, "detail": detail}
    match = _NO_DISTRIBUTION.search(output)
    if match is not None:
        return {"kind": "no_version", "requirement": match.group(1), "versions": [], "detail": detail}
    return {"kind": "failed", "requirement": None, "versions": [], "detail": detail}


def choose_failure(versions: list[str], files: list[str] | None) -> str:
    """Why no wheel fits a requirement pip could not satisfy, from the versions pip saw and the index's list of
    the project's files (None: the index has no such project). Returns ``not_found``, ``sdist_only`` or
    ``no_wheel`` (wheels exist, none for this Python and platform)."""
    if not files or versions:
        return "not_found"  # no such project, or versions exist but none matches the specifier
    if not any(f.endswith(".whl") for f in files):
        return "sdist_only"
    return "no_wheel"


def wheels_from_report(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The wheels pip's installation report says it would install: name, version, url, sha256, requested."""
    wheels = []
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        info = item.get("download_info", {})
        url = str(info.get("url", ""))
        hashes = info.get("archive_info", {}).get("hashes", {}) or {}
        filename = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
        wheels.append(
            {
                "name": str(metadata.get("name", "")),
                "version": str(metadata.get("version", "")),
                "url": url,
                "filename": filename,
                "sha256": str(hashes.get("sha256", "")),
                "requested": bool(item.get("requested")),
            }
        )
    return wheels


# --- the run itself (inside the helper container) ---------------------------------------------------------------


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=CA_FILE) if os.path.exists(CA_FILE) else ssl.create_default_context()


def _open(url: str, method: str = "GET", accept: str | None = None, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, method=method, headers={"Accept": accept} if accept else {})
    return urllib.request.urlopen(request, timeout=timeout, context=_ssl_context())


def _project_files(index_url: str, name: str) -> list[str] | None:
    """File names the index lists for ``name`` (PEP 691 JSON, else the HTML page); None if it has no such project."""
    url = f"{index_url.rstrip('/')}/{name}/"
    try:
        with _open(url, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
            body = response.read(20 << 20).decode("utf-8", "replace")
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    if "json" in kind:
        return [str(f.get("filename", "")) for f in json.loads(body).get("files", [])]
    return [urllib.parse.unquote(m.rsplit("/", 1)[-1]) for m in re.findall(r'href="([^"#]+)', body)]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _platform() -> str:
    import platform

    return f"CPython {sys.version_info.major}.{sys.version_info.minor} {platform.system().lower()} {platform.machine()}"


def _fail(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "message": message, **extra}


def _explain(args: dict[str, Any], failure: dict[str, Any]) -> dict[str, Any]:
    requirement = failure["requirement"] or ""
    if failure["kind"] == "unreachable":
        return _fail(
            "unreachable", f"the package index {args['index_url']} could not be reached", detail=failure["detail"]
        )
    if failure["kind"] == "conflict":
        return _fail("conflict", failure["detail"], detail=failure["detail"])
    if failure["kind"] != "no_version":
        return _fail("failed", failure["detail"], detail=failure["detail"])
    match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    name = match.group(1) if match else requirement
    try:
        files = _project_files(args["index_url"], _canonical(name))
    except Exception as error:  # noqa: BLE001 - any failure here means the index did not answer
        return _fail("unreachable", f"the package index {args['index_url']} could not be reached ({error})")
    kind = choose_failure(failure["versions"], files)
    return _fail(kind, failure["detail"], name=_canonical(name), platform=_platform(), versions=failure["versions"])


def _constraints() -> str:
    """The image's preinstalled distributions, pinned: the resolver must keep them as they are."""
    from importlib.metadata import distributions

    pins = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and _canonical(name) not in ("pip", "setuptools", "wheel"):
            pins[_canonical(name)] = dist.version
    path = "/tmp/jupycell-constraints.txt"
    with open(path, "w") as f:
        f.writelines(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    return path


def _resolve(args: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    report_path = "/tmp/jupycell-report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--report", report_path, "--index-url", args["index_url"],
        "--retries", "1", "--timeout", str(args.get("timeout", 20)), "-c", _constraints(),
    ]  # fmt: skip
    if os.path.exists(CA_FILE):
        command += ["--cert", CA_FILE]
    process = subprocess.run([*command, *args["requirements"]], capture_output=True, text=True)
    if process.returncode != 0:
        return None, _explain(args, classify(process.stdout + process.stderr))
    with open(report_path) as f:
        return wheels_from_report(json.load(f)), None


def _download_all(wheels: list[dict[str, Any]], budget: int) -> dict[str, Any] | None:
    """Download the wheels into /out, checking sha256. All requests are opened first (in parallel) and their
    announced sizes summed: over the budget, every connection is closed before a body byte is read (a failure
    result is returned); the budget also holds while reading, whatever was announced."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda w: _open(w["url"], timeout=120), wheels))
    try:
        for wheel, response in zip(wheels, responses, strict=True):
            wheel["size"] = int(response.headers.get("Content-Length") or 0)
        total = sum(wheel["size"] for wheel in wheels)
        if total > budget:
            listing = [{"name": w["name"], "version": w["version"], "size": w["size"]} for w in wheels]
            return _fail("too_large", f"{total} bytes of wheels", total=total, wheels=listing)
        counter = {"bytes": 0}
        lock = threading.Lock()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda pair: _save(pair[0], pair[1], budget, counter, lock), zip(wheels, responses, strict=True)
                )
            )
    finally:
        for response in responses:
            response.close()
    return None


def _save(wheel: dict[str, Any], response: Any, budget: int, counter: dict[str, int], lock: Any) -> None:
    digest = hashlib.sha256()
    part = os.path.join(OUT, wheel["filename"] + ".part")
    size = 0
    with open(part, "wb") as f:
        while chunk := response.read(CHUNK):
            size += len(chunk)
            with lock:
                counter["bytes"] += len(chunk)
                if counter["bytes"] > budget:
                    raise ValueError("the wheels are larger than announced and than the byte budget")
            digest.update(chunk)
            f.write(chunk)
    if wheel["sha256"] and digest.hexdigest() != wheel["sha256"]:
        os.remove(part)
        raise ValueError(f"{wheel['filename']}: sha256 does not match the index's")
    wheel["sha256"], wheel["size"] = digest.hexdigest(), size
    os.replace(part, os.path.join(OUT, wheel["filename"]))


def run(args: dict[str, Any]) -> dict[str, Any]:
    wheels, failure = _resolve(args)
    if failure is not None:
        return failure
    assert wheels is not None
    for wheel in wheels:
        if not wheel["filename"].endswith(".whl") or "/" in wheel["filename"] or not wheel["url"]:
            return _fail("failed", f"the index offered {wheel['filename']!r}, which is not a wheel")
    denied = sorted({_canonical(w["name"]) for w in wheels} & set(args.get("deny", [])))
    if denied:
        return _fail("denied", f"{', '.join(denied)} (a dependency) is on the deny list", names=denied)
    failure = _download_all(wheels, args["max_bytes"]) if wheels else None
    return failure or {"ok": True, "wheels": wheels}


def main() -> None:
    args = json.loads(sys.argv[1])
    try:
        result = run(args)
    except Exception as error:  # noqa: BLE001 - reported to the gateway, which words it for the user
        unreachable = isinstance(error, (urllib.error.URLError, TimeoutError, ConnectionError))
        result = _fail("unreachable" if unreachable else "failed", f"{type(error).__name__}: {error}")
    with open(os.path.join(OUT, "result.json.part"), "w") as f:
        json.dump(result, f)
    os.replace(os.path.join(OUT, "result.json.part"), os.path.join(OUT, "result.json"))


if __name__ == "__main__":
    main()
