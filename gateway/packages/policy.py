"""Which package requests are allowed: mode (off, allow-list, any), deny list, caps. Pure; every refusal names
the rule (the setting) that refused it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.packages.errors import PackageLimitExceeded, PackageNotAllowed
from gateway.packages.requirements import PackageRequest
from gateway.packages.settings import PackageSettings

MB = 2**20


@dataclass(frozen=True)
class PackagePolicy:
    mode: str
    allow: frozenset[str]
    deny: frozenset[str]
    max_per_request: int
    max_per_kernel: int
    max_request_bytes: int
    max_kernel_bytes: int

    @classmethod
    def from_settings(cls, settings: PackageSettings) -> PackagePolicy:
        return cls(
            mode=settings.packages,
            allow=settings.allow,
            deny=settings.deny,
            max_per_request=settings.packages_max_per_request,
            max_per_kernel=settings.packages_max_per_kernel,
            max_request_bytes=int(settings.packages_max_request_mb * MB),
            max_kernel_bytes=int(settings.packages_max_kernel_mb * MB),
        )

    def check_request(self, requests: list[PackageRequest], kernel_has: set[str]) -> None:
        """Refuse the request before anything is fetched: packages off, a name denied or not allowed, too many
        packages in the request, or more packages for the kernel than it may have (``kernel_has``: the names it
        asked for before)."""
        if self.mode == "off":
            raise PackageNotAllowed(
                "Installing packages is turned off on this gateway (JUPYCELL_PACKAGES=off); use a kernel image "
                "with the package preinstalled."
            )
        for request in requests:
            if request.name in self.deny:
                raise PackageNotAllowed(f"Package {request.name!r} is on the deny list (JUPYCELL_PACKAGES_DENY).")
            if self.mode == "allow-list" and request.name not in self.allow:
                allowed = ", ".join(sorted(self.allow)) or "none"
                raise PackageNotAllowed(
                    f"Package {request.name!r} is not on the allow list (JUPYCELL_PACKAGES=allow-list, "
                    f"JUPYCELL_PACKAGES_ALLOW: {allowed})."
                )
        if len(requests) > self.max_per_request:
            raise PackageLimitExceeded(
                f"Too many packages in one request: {len(requests)}, the limit is {self.max_per_request} "
                "(JUPYCELL_PACKAGES_MAX_PER_REQUEST)."
            )
        total = len(kernel_has | {request.name for request in requests})
        if total > self.max_per_kernel:
            raise PackageLimitExceeded(
                f"Too many packages for this kernel: it would have {total}, the limit is {self.max_per_kernel} "
                "(JUPYCELL_PACKAGES_MAX_PER_KERNEL)."
            )

    def byte_budget(self, kernel_bytes: int) -> int:
        """Most bytes of wheels the next request may fetch for a kernel already holding ``kernel_bytes``."""
        return max(0, min(self.max_request_bytes, self.max_kernel_bytes - kernel_bytes))

    def too_large(self, total: int, kernel_bytes: int, listing: str) -> PackageLimitExceeded:
        """The error for a request of ``total`` bytes over ``byte_budget(kernel_bytes)``, naming the cap."""
        if total > self.max_request_bytes:
            rule = f"the limit per request is {_mb(self.max_request_bytes)} (JUPYCELL_PACKAGES_MAX_REQUEST_MB)"
        else:
            rule = (
                f"this kernel already holds {_mb(kernel_bytes)} and may hold {_mb(self.max_kernel_bytes)} "
                "(JUPYCELL_PACKAGES_MAX_KERNEL_MB)"
            )
        return PackageLimitExceeded(f"Packages too large: {listing} come to {_mb(total)}; {rule}. Nothing was fetched.")


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"
