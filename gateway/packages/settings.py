"""Settings of packages on demand (``JUPYCELL_PACKAGE*``), read from the environment and validated at start-up.

Kept apart from ``gateway.settings`` so the feature stays in its own package; same prefix, same rules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

from packaging.utils import canonicalize_name
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PYPI = "https://pypi.org/simple"


class PackageSettings(BaseSettings):
    """Policy, caps, cache and fetch helper of packages on demand (docs/packages.md)."""

    model_config = SettingsConfigDict(env_prefix="JUPYCELL_", extra="ignore")

    packages: Literal["off", "allow-list", "any"] = Field(
        "any",
        description="Which packages kernels may install: 'off' (none), 'allow-list' (only packages_allow), "
        "'any' (any package of the index, wheels only). packages_deny applies in every mode.",
    )
    packages_allow: str = Field("", description="Comma-separated project names allowed in 'allow-list' mode.")
    packages_deny: str = Field("", description="Comma-separated project names never installed, dependencies too.")
    package_index_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="Simple-API index the wheels come from; default: the index pip is configured for where the "
        "gateway runs (PIP_INDEX_URL, pip config), else PyPI.",
    )
    package_ca_bundle: Path | None = Field(
        None,
        description="PEM bundle the fetch helper trusts (TLS-intercepting or corporate proxy); default: the file "
        "PIP_CERT, SSL_CERT_FILE or REQUESTS_CA_BUNDLE names, if any.",
    )
    packages_dir: Path = Field(
        Path("/var/lib/jupycell/packages"),
        description="Host directory of the shared wheel cache and of each kernel's wheel directory (mounted "
        "read-only in its container). Mount it at the same path inside and out when the gateway runs in Docker.",
    )
    package_cache_mb: int = Field(2048, ge=16, description="Size cap of the shared wheel cache (LRU eviction).")
    packages_max_per_request: int = Field(10, ge=1, description="Packages named in one request or cell.")
    packages_max_per_kernel: int = Field(50, ge=1, description="Packages a kernel may ask for in its life.")
    packages_max_request_mb: float = Field(100, gt=0, description="Wheel bytes one request may fetch.")
    packages_max_kernel_mb: float = Field(
        200, gt=0, description="Wheel bytes a kernel may hold; installed, they live in its packages tmpfs (memory)."
    )
    packages_tmpfs_mb: int = Field(
        512, ge=16, description="Size of the tmpfs in each kernel that installed packages live in (counts as memory)."
    )
    package_fetch_timeout: float = Field(180, gt=0, description="Deadline of one fetch (helper container), s.")
    package_install_timeout: float = Field(120, gt=0, description="Deadline of pip inside the kernel, s.")
    package_fetch_runtime: str = Field(
        "runc", description="Runtime of the fetch helper (it has network: runsc here only runs without)."
    )
    package_fetch_network: str = Field("bridge", description="Docker network of the fetch helper.")
    package_fetch_mem_mb: int = Field(768, ge=128, description="Memory limit of the fetch helper.")
    package_resolution_ttl: float = Field(
        86400, ge=0, description="Seconds a resolved request is reused from the cache without asking the index."
    )

    @field_validator("package_ca_bundle", "package_index_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("packages_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError("must be an absolute path (the Docker engine resolves it on the host)")
        return value

    @property
    def allow(self) -> frozenset[str]:
        return _names(self.packages_allow)

    @property
    def deny(self) -> frozenset[str]:
        return _names(self.packages_deny)

    def index_url(self) -> str:
        """The configured index, else pip's own configuration here, else PyPI. Blocking (asks pip once)."""
        if self.package_index_url:
            return self.package_index_url
        if os.environ.get("PIP_INDEX_URL", "").startswith(("http://", "https://")):
            return os.environ["PIP_INDEX_URL"].split()[0]
        try:
            answer = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            answer = ""
        return answer if answer.startswith(("http://", "https://")) else PYPI

    def ca_bundle(self) -> Path | None:
        if self.package_ca_bundle is not None:
            return self.package_ca_bundle
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            value = os.environ.get(name)
            if value and Path(value).is_file():
                return Path(value)
        return None


def _names(text: str) -> frozenset[str]:
    return frozenset(canonicalize_name(name.strip()) for name in text.split(",") if name.strip())
