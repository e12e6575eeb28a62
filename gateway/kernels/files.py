"""Files in and out of a kernel's working directory (``/work``), moved through the kernel itself.

``/work`` is a tmpfs inside the container: the engine's archive API (``docker cp``) does not see tmpfs mounts, and
under gVisor the container's filesystem is not the host's. The kernel can always reach its own files, so the bytes
travel as base64 in silent execute requests (``store_history=False``, no outputs, no execution count), in chunks,
each evaluated as a ``user_expressions`` entry in a throwaway namespace: the user's variables are never touched.
An upload is written to a sibling ``.jupycell-upload`` file and renamed into place when complete.
"""

from __future__ import annotations

import ast
import base64
import posixpath
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.errors import (
    FileMissing,
    FileTooLarge,
    FileTransferFailed,
    InvalidFilePath,
    KernelCodeError,
    KernelDead,
    KernelGone,
    KernelUnresponsive,
)
from gateway.kernels.kernel import Kernel
from gateway.kernels.lifecycle import KernelLifecycle
from gateway.kernels.moves import MOVED, moved_away
from gateway.kernels.ports import KernelConnection
from gateway.kernels.supervisor import DeathSupervisor

T = TypeVar("T")

WORK_DIR = "/work"
CHUNK_BYTES = 1 << 20  # raw bytes per request (about 1.4 MB of base64)
REQUEST_TIMEOUT = 60.0

# Runs inside the kernel, in a fresh namespace per request. Paths are resolved (symlinks included) and must stay
# under the working directory.
_KERNEL_SIDE = r"""
import base64, os
ROOT = os.path.realpath(@ROOT@)

def _resolve(rel):
    path = os.path.realpath(os.path.join(ROOT, rel))
    if os.path.commonpath([path, ROOT]) != ROOT:
        raise PermissionError('the path leads outside ' + ROOT)
    return path

def stat(rel):
    path = _resolve(rel)
    if not os.path.exists(path):
        return {'exists': False}
    return {'exists': True, 'file': os.path.isfile(path), 'size': os.path.getsize(path)}

def read(rel, offset, size):
    with open(_resolve(rel), 'rb') as f:
        f.seek(offset)
        return base64.b64encode(f.read(size)).decode()

def write(rel, data, first, last):
    path = _resolve(rel)
    part = path + '.jupycell-upload'
    if first:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(part, 'wb' if first else 'ab') as f:
            f.write(base64.b64decode(data))
        if last:
            os.replace(part, path)
            return os.path.getsize(path)
        return os.path.getsize(part)
    except BaseException:
        if os.path.exists(part):
            os.remove(part)
        raise
""".replace("@ROOT@", repr(WORK_DIR))


def clean_path(path: str) -> str:
    """``path`` relative to the working directory, normalised; InvalidFilePath if it is absolute, empty,
    climbs out with ``..`` or contains a NUL byte."""
    if not path or "\x00" in path:
        raise InvalidFilePath("Invalid file path: it must be a non-empty path without NUL bytes.")
    if path.startswith("/") or path.startswith("\\"):
        raise InvalidFilePath(f"Invalid file path {path!r}: give a path relative to the working directory {WORK_DIR}.")
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        raise InvalidFilePath(f"Invalid file path {path!r}: '..' is not allowed.")
    normalised = posixpath.normpath("/".join(parts))
    if normalised in (".", ""):
        raise InvalidFilePath(f"Invalid file path {path!r}: it names the working directory itself, not a file.")
    return normalised


class KernelFiles:
    """File transfer through one kernel's client. The caller holds the kernel's lock (the shell channel is shared
    with runs)."""

    def __init__(self, client: KernelConnection, max_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_bytes

    async def _call(self, function: str, *args: object) -> object:
        expression = f"(lambda ns: (exec({_KERNEL_SIDE!r}, ns), ns[{function!r}](*{args!r}))[1])({{}})"
        try:
            text = await self._client.evaluate(expression, REQUEST_TIMEOUT)
        except KernelCodeError as error:
            if error.ename == "FileNotFoundError":
                raise FileMissing(f"Not found in {WORK_DIR}: {error.evalue}") from None
            if error.ename in ("PermissionError", "IsADirectoryError", "NotADirectoryError", "FileExistsError"):
                raise InvalidFilePath(f"Unusable path in {WORK_DIR}: {error}") from None
            raise FileTransferFailed(f"The kernel could not move the file: {error}") from None
        return ast.literal_eval(text)

    async def upload(self, path: str, data: bytes) -> int:
        """Write ``data`` to ``path`` under the working directory (parents created); return the file's size."""
        path = clean_path(path)
        if len(data) > self._max_bytes:
            raise FileTooLarge(f"File too large: {len(data)} bytes, the limit is {self._max_bytes}.")
        size = 0
        chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        for index, chunk in enumerate(chunks):
            encoded = base64.b64encode(chunk).decode()
            written = await self._call("write", path, encoded, index == 0, index == len(chunks) - 1)
            assert isinstance(written, int)
            size = written
        return size

    async def download(self, path: str) -> bytes:
        """The bytes of ``path`` under the working directory."""
        clean = clean_path(path)
        info = await self._call("stat", clean)
        assert isinstance(info, dict)
        if not info["exists"]:
            raise FileMissing(f"File {clean!r} not found in {WORK_DIR}.")
        if not info["file"]:
            raise InvalidFilePath(f"{clean!r} in {WORK_DIR} is not a regular file.")
        if info["size"] > self._max_bytes:
            raise FileTooLarge(f"File too large to download: {info['size']} bytes, the limit is {self._max_bytes}.")
        data = bytearray()
        while len(data) < info["size"]:
            chunk = await self._call("read", clean, len(data), CHUNK_BYTES)
            decoded = base64.b64decode(str(chunk))
            if not decoded:
                break  # the file shrank meanwhile
            data += decoded
        return bytes(data)


class FileTransfer:
    """Uploads and downloads, queued with the kernel's runs (its lock); a kernel lost meanwhile goes through the
    one death policy."""

    def __init__(self, lifecycle: KernelLifecycle, supervisor: DeathSupervisor, max_bytes: int) -> None:
        self.lifecycle = lifecycle
        self.supervisor = supervisor
        self.max_bytes = max_bytes

    async def upload(self, kernel: Kernel, path: str, data: bytes) -> int:
        """Write ``data`` to ``path`` under the kernel's working directory (after work queued before it)."""
        return await self._transfer(kernel, lambda files: files.upload(path, data))

    async def download(self, kernel: Kernel, path: str) -> bytes:
        """The bytes of ``path`` under the kernel's working directory (after work queued before it)."""
        return await self._transfer(kernel, lambda files: files.download(path))

    async def _transfer(self, kernel: Kernel, operation: Callable[[KernelFiles], Awaitable[T]]) -> T:
        async with kernel.lock:
            await self.lifecycle.settled(kernel)
            client = kernel.client
            if not kernel.alive or client is None:
                raise KernelDead(kernel.id, kernel.last_death)
            kernel.touch()
            try:
                return await operation(KernelFiles(client, self.max_bytes))
            except KernelUnresponsive as error:
                raise FileTransferFailed(f"The kernel did not answer the file transfer: {error}.") from None
            except KernelGone:
                if moved_away(kernel, client):
                    raise FileTransferFailed(f"The transfer was cut off: {MOVED}; try again.") from None
                if kernel not in self.lifecycle.registry:
                    raise FileTransferFailed(f"The kernel was {kernel.last_death} during the file transfer.") from None
                cause = f"{await self.lifecycle.death_cause(kernel)} during a file transfer"
                await self.supervisor.on_lost(kernel, cause)
                self.lifecycle.observer.kernel_died(kernel)
                raise FileTransferFailed(f"The kernel died ({cause}); it is restarted fresh.") from None
            finally:
                kernel.touch()
