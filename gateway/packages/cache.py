"""The shared wheel cache and each kernel's wheel directory, on the host's disk. Blocking: call off the loop.

Layout under ``packages_dir``::

    cache/wheels/<wheel file>        every wheel fetched, shared by all kernels (and gateways) on this disk
    cache/resolutions/<key>.json     what a request resolved to, so a repeated request needs no index
    cache/incoming/<random>/         one fetch helper's output, before its wheels are checked and adopted
    cache/.lock                      flock: shared while linking wheels out, exclusive while evicting
    kernels/<instance>/<kernel id>/  hard links to the wheels this kernel asked for (read-only in its container)

Safe for concurrent fetches, in one gateway or several: a wheel enters the cache by ``link`` (the first one in
wins, the same file either way), resolutions are written to a temporary file and renamed, eviction holds the
exclusive lock while linkers hold the shared one. Eviction (least recently used first, by mtime, touched on every
use) keeps the cache under its cap; a kernel's hard links keep its wheels even after the cache lets them go.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_RESULT_BYTES = 4 << 20


@dataclass(frozen=True)
class Wheel:
    """One wheel file: its project (canonical name), version, file name, sha256 and size."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int

    @classmethod
    def from_json(cls, value: Any) -> Wheel:
        """A wheel described by untrusted JSON (the helper's result, a stored record); ValueError if malformed."""
        if not isinstance(value, dict):
            raise ValueError("not an object")
        filename = str(value.get("filename", ""))
        if "/" in filename or "\x00" in filename or filename.startswith("."):
            raise ValueError(f"unsafe file name {filename[:80]!r}")
        try:
            name, version, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename as error:
            raise ValueError(str(error)) from None
        sha256, size = str(value.get("sha256", "")), value.get("size")
        if not _HEX64.match(sha256) or not isinstance(size, int) or size < 0:
            raise ValueError(f"{filename}: no valid sha256 and size")
        return cls(canonicalize_name(name), str(version), filename, sha256, size)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class CacheMiss(Exception):
    """A wheel is not (or no longer) in the cache."""


class WheelCache:
    def __init__(self, root: Path, max_bytes: int, owner_uid: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.owner_uid = owner_uid  # the fetch helper writes its output as this uid
        self.wheels = root / "cache" / "wheels"
        self.resolutions = root / "cache" / "resolutions"
        self.incoming = root / "cache" / "incoming"
        self.kernels = root / "kernels"
        for directory in (self.wheels, self.resolutions, self.incoming, self.kernels):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = root / "cache" / ".lock"

    # --- fetch output ---------------------------------------------------------------------------------------

    def new_incoming(self) -> Path:
        """A fresh, empty directory the fetch helper (running as ``owner_uid``) may write to."""
        path = self.incoming / secrets.token_hex(8)
        path.mkdir(mode=0o700)
        try:
            os.chown(path, self.owner_uid, self.owner_uid)
        except PermissionError:  # the gateway is not root: let the helper's uid in anyway
            path.chmod(0o777)
        return path

    @staticmethod
    def read_result(incoming: Path) -> Any:
        """The helper's ``result.json`` (untrusted JSON, size-capped); None if it wrote none."""
        path = incoming / "result.json"
        if not path.is_file() or path.is_symlink():
            return None
        with path.open("rb") as f:
            data = f.read(MAX_RESULT_BYTES + 1)
        if len(data) > MAX_RESULT_BYTES:
            raise ValueError("the helper's result is too large")
        return json.loads(data)

    def adopt(self, incoming: Path, wheels: list[Wheel]) -> None:
        """Check each wheel the helper downloaded (a regular file of the announced size and sha256) and link it
        into the cache. ValueError if one does not match. The incoming directory is left for ``discard``."""
        for wheel in wheels:
            source = incoming / wheel.filename
            if source.is_symlink() or not source.is_file():
                raise ValueError(f"{wheel.filename} was not downloaded")
            if source.stat().st_size != wheel.size or _sha256(source) != wheel.sha256:
                raise ValueError(f"{wheel.filename} does not match its size and sha256")
            os.chmod(source, 0o644)  # a regular file (checked above; the helper has exited)
            with contextlib.suppress(FileExistsError):
                os.link(source, self.wheels / wheel.filename, follow_symlinks=False)

    @staticmethod
    def discard(incoming: Path) -> None:
        shutil.rmtree(incoming, ignore_errors=True)

    # --- resolutions ----------------------------------------------------------------------------------------

    def lookup(self, key: str, max_age: float) -> list[Wheel] | None:
        """What ``key`` resolved to, if known for less than ``max_age`` seconds and every wheel is still cached."""
        path = self.resolutions / f"{key}.json"
        try:
            record = json.loads(path.read_text())
            if time.time() - float(record["created"]) > max_age:
                return None
            wheels = [Wheel.from_json(item) for item in record["wheels"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all((self.wheels / wheel.filename).is_file() for wheel in wheels):
            return None
        return wheels

    def remember(self, key: str, wheels: list[Wheel]) -> None:
        record = {"created": time.time(), "wheels": [wheel.as_json() for wheel in wheels]}
        temporary = self.resolutions / f".{key}.{secrets.token_hex(4)}"
        temporary.write_text(json.dumps(record))
        os.replace(temporary, self.resolutions / f"{key}.json")

    # --- kernels --------------------------------------------------------------------------------------------

    def kernel_dir(self, instance: str, kernel_id: int) -> Path:
        return self.kernels / instance / str(kernel_id)

    def link_into(self, kernel_dir: Path, wheels: list[Wheel]) -> None:
        """Hard-link the wheels into a kernel's directory (and mark them used). CacheMiss if one was evicted."""
        kernel_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(fcntl.LOCK_SH):
            for wheel in wheels:
                cached = self.wheels / wheel.filename
                try:
                    os.link(cached, kernel_dir / wheel.filename)
                except FileExistsError:
                    pass
                except FileNotFoundError:
                    raise CacheMiss(wheel.filename) from None
                with contextlib.suppress(FileNotFoundError):
                    os.utime(cached)

    @staticmethod
    def record_manifest(kernel_dir: Path, requirements: list[str], wheels: list[Wheel]) -> None:
        """Note in the kernel's ``manifest.json`` which wheels each requirement resolved to (the kernel's
        ``%pip install`` unpacks exactly those); written to a temporary file and renamed."""
        path = kernel_dir / "manifest.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            manifest = {}
        if not isinstance(manifest, dict):
            manifest = {}
        for requirement in requirements:
            manifest[requirement] = [wheel.filename for wheel in wheels]
        temporary = kernel_dir / f".manifest.{secrets.token_hex(4)}"
        temporary.write_text(json.dumps(manifest))
        temporary.chmod(0o644)
        os.replace(temporary, path)

    @staticmethod
    def kernel_holds(kernel_dir: Path, wheels: list[Wheel]) -> bool:
        return all((kernel_dir / wheel.filename).is_file() for wheel in wheels)

    def remove_kernel(self, instance: str, kernel_id: int) -> None:
        shutil.rmtree(self.kernel_dir(instance, kernel_id), ignore_errors=True)

    def remove_kernels_except(self, instance: str, keep: set[int]) -> None:
        """Remove the wheel directories of this instance's kernels that are gone (gateway start-up)."""
        directory = self.kernels / instance
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.name not in {str(k) for k in keep}:
                    shutil.rmtree(entry, ignore_errors=True)

    # --- eviction -------------------------------------------------------------------------------------------

    def evict(self) -> int:
        """Remove the least recently used wheels until the cache is under its cap; return how many went."""
        with self._locked(fcntl.LOCK_EX):
            entries = []
            for path in self.wheels.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    entries.append((stat.st_mtime, stat.st_size, path))
            total = sum(size for _, size, _ in entries)
            removed = 0
            for _, size, path in sorted(entries, key=lambda entry: entry[0]):
                if total <= self.max_bytes:
                    break
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                total -= size
                removed += 1
            return removed

    def size(self) -> int:
        return sum(path.stat().st_size for path in self.wheels.iterdir())

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with open(self._lock_file, "a+") as f:
            fcntl.flock(f, mode)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def resolution_key(image_id: str, index_url: str, requirements: list[str]) -> str:
    """The cache key of a request: what it asks for, from which index, for which image."""
    text = json.dumps([image_id, index_url, sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
