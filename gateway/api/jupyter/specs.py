"""Kernel specs: the sandbox profiles the operator configured, as Jupyter clients see them.

One profile per allowed container runtime, all with the gateway's image and limits: ``python3`` runs on the
deployment's default runtime (so notebooks saved with the usual kernel name open on it), ``python3-<runtime>`` on
each other allowed runtime (e.g. ``python3-runsc`` for gVisor), and ``python3-image-<image>`` for each other allowed
image (``JUPYCELL_ALLOWED_IMAGES``, on the default runtime; issue 13). A spec's metadata says what its sandbox is
(``metadata.jupycell``); its resources are two small logos served at ``/kernelspecs/{name}/{file}``, where
jupyter_server looks for them.
"""

from __future__ import annotations

import re
import struct
import zlib
from functools import lru_cache
from typing import Any

from gateway.errors import KernelSpecNotFound
from gateway.settings import Settings

DEFAULT_KERNEL_NAME = "python3"
LOGO_SIZES = (32, 64)
_ORANGE = (0xF3, 0x77, 0x26, 0xFF)  # Jupyter's orange
_DARK = (0x30, 0x30, 0x30, 0xFF)
_CLEAR = (0, 0, 0, 0)


def profiles(settings: Settings) -> list[tuple[str, str, str | None]]:
    """``(name, runtime, image)`` of every kernel spec, default first; image None: the deployment's."""
    found: list[tuple[str, str, str | None]] = [(spec_name(r, settings), r, None) for r in settings.runtimes]
    found += [(spec_name(settings.runtime, settings, image), settings.runtime, image) for image in settings.images[1:]]
    return found


def kernel_names(settings: Settings) -> list[str]:
    """The kernel spec names, default first."""
    return [name for name, _, _ in profiles(settings)]


def spec_name(runtime: str, settings: Settings, image: str | None = None) -> str:
    """The name of the kernel spec whose kernels run on ``runtime`` (with an allowed ``image`` of their own)."""
    if image and image != settings.sandbox_image:
        return f"{DEFAULT_KERNEL_NAME}-image-{re.sub(r'[^a-z0-9]+', '-', image.lower()).strip('-')}"
    return DEFAULT_KERNEL_NAME if runtime == settings.runtime else f"{DEFAULT_KERNEL_NAME}-{runtime}"


def spec_profile(name: str, settings: Settings) -> tuple[str, str | None]:
    """The runtime and image (None: the deployment's) of kernel spec ``name``; KernelSpecNotFound if none."""
    for spec, runtime, image in profiles(settings):
        if spec == name:
            return runtime, image
    raise KernelSpecNotFound(name, kernel_names(settings))


def spec_runtime(name: str, settings: Settings) -> str:
    """The runtime of kernel spec ``name``; KernelSpecNotFound if there is no such spec."""
    return spec_profile(name, settings)[0]


def kernelspec(name: str, settings: Settings, profile: dict[str, Any]) -> dict[str, Any]:
    """The kernel spec model (``{"name", "spec", "resources"}``) of profile ``name``."""
    runtime, image = spec_profile(name, settings)
    limits = {k: v for k, v in profile.items() if k not in ("image", "runtime")}
    return {
        "name": name,
        "spec": {
            "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python 3 (JupyCell sandbox, {runtime}{f', {image}' if image else ''})",
            "language": "python",
            "interrupt_mode": "message",
            "env": {},
            "metadata": {
                "debugger": False,
                "jupycell": {
                    "image": image or profile["image"],
                    "runtime": runtime,
                    "network": "none",
                    "limits": limits,
                    "allowed_env": sorted(settings.jupyter_env_names),
                    "stdin": settings.jupyter_allow_stdin,
                },
            },
        },
        "resources": {f"logo-{n}x{n}": f"/kernelspecs/{name}/logo-{n}x{n}.png" for n in LOGO_SIZES},
    }


def kernelspecs(settings: Settings, profile: dict[str, Any]) -> dict[str, Any]:
    """The ``GET /api/kernelspecs`` body."""
    return {
        "default": DEFAULT_KERNEL_NAME,
        "kernelspecs": {name: kernelspec(name, settings, profile) for name in kernel_names(settings)},
    }


def resource(name: str, filename: str, settings: Settings) -> bytes | None:
    """A kernel spec's resource file, or None if there is no such file."""
    if name not in kernel_names(settings):
        return None
    for size in LOGO_SIZES:
        if filename == f"logo-{size}x{size}.png":
            return logo_png(size)
    return None


@lru_cache
def logo_png(size: int) -> bytes:
    """A ``size`` x ``size`` RGBA PNG: an orange tile holding a dark "cell" bar."""

    def pixel(x: int, y: int) -> tuple[int, ...]:
        edge = size // 8
        if min(x, y, size - 1 - x, size - 1 - y) < edge // 2:
            return _CLEAR
        if 3 * size // 8 <= y < 5 * size // 8 and edge <= x < size - edge:
            return _DARK
        return _ORANGE

    rows = b"".join(b"\0" + bytes(c for x in range(size) for c in pixel(x, y)) for y in range(size))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8 bits per channel, RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
