"""Packages on demand: the core's ``KernelPackages`` port (``gateway.kernels.ports``), wired by ``gateway.main``.

- ``before_run``: before a cell is sent, fetch the wheels its ``%pip install`` lines ask for into the kernel's
  wheel directory (the line itself then installs them offline, in the kernel); a refusal or failure comes back as
  the cell's ``error`` output and the cell is not sent.
- ``install``: ``POST /kernels/{id}/packages`` (and the MCP tool): fetch, then install in the kernel at once.
- ``after_launch``: after a kernel got a container back (restart, replacement, re-attach), install again what it
  had, from the cache, before it is handed back.

What happens on the disk and engine where the kernel runs (wheel cache, fetch helper, the kernel's wheel directory)
goes through a ``PackageHost`` (``gateway.packages.host``): this machine's, or the kernel's node agent's.

A request is parsed (``requirements``), checked against the policy, resolved (a cached resolution, else one run
of the fetch helper, single-flight per site and request), checked against the byte caps, linked into the kernel's
directory and recorded in the store (``kernel_packages``) so a restarted gateway knows it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import KernelCodeError, KernelGone, KernelUnresponsive, SandboxUnavailable
from gateway.kernels.kernel import Kernel
from gateway.notebook.outputs import Output
from gateway.packages import errors
from gateway.packages.cache import CacheMiss, Wheel
from gateway.packages.host import PackageHost
from gateway.packages.kernel_side import install_in_kernel
from gateway.packages.local_host import LocalPackageHost
from gateway.packages.policy import PackagePolicy
from gateway.packages.requirements import PackageRequest, parse_requirement, parse_requirements, pip_lines
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings

log = logging.getLogger(__name__)


class PackageStore(Protocol):
    """Where what each kernel installed is kept (``gateway.adapters.sql.Store``: the ``kernel_packages`` table)."""

    async def save_packages(self, kernel_id: int, requirements: list[str], wheels: list[dict[str, Any]]) -> None: ...

    async def load_packages(self, instance: str) -> dict[int, tuple[list[str], list[dict[str, Any]]]]: ...


@dataclass
class InstalledPackages:
    """What one kernel asked for (requirement strings, in order) and the wheels fetched for it."""

    requirements: list[str] = field(default_factory=list)
    wheels: dict[str, Wheel] = field(default_factory=dict)  # by file name

    @property
    def names(self) -> set[str]:
        return {parse_requirement(text).name for text in self.requirements}

    @property
    def size(self) -> int:
        return sum(wheel.size for wheel in self.wheels.values())


class PackageService:
    """Packages on demand for the kernels of one gateway instance (the core's ``KernelPackages``); what happens on
    the disk and engine where a kernel runs goes through ``host`` (this machine's by default)."""

    def __init__(
        self,
        settings: Settings,
        store: PackageStore,
        package_settings: PackageSettings | None = None,
        host: PackageHost | None = None,
    ) -> None:
        self.settings = settings
        self.config = package_settings or PackageSettings()
        self.store = store
        self.policy = PackagePolicy.from_settings(self.config)
        self.enabled = self.config.packages != "off"
        self.host: PackageHost = host or LocalPackageHost(settings, self.config)
        self._kernels: dict[int, InstalledPackages] = {}
        self._in_flight: dict[tuple[str, str, tuple[str, ...]], asyncio.Lock] = {}

    # --- gateway lifecycle ----------------------------------------------------------------------------------

    async def start_up(self, kernel_ids: set[int]) -> None:
        """Learn the index, load what every stored kernel of this instance installed, drop the wheel directories
        of kernels that are gone."""
        if not self.enabled:
            log.info("packages on demand: off")
            return
        self._kernels = await self._stored()
        await self.host.start_up(kernel_ids)
        log.info("packages: %s, on %s", self.config.packages, type(self.host).__name__)

    async def _stored(self) -> dict[int, InstalledPackages]:
        """What the store says each kernel of this instance installed."""
        kernels: dict[int, InstalledPackages] = {}
        for kernel_id, (requirements, wheels) in (await self.store.load_packages(self.settings.instance)).items():
            state = InstalledPackages(list(requirements))
            for item in wheels:
                try:
                    wheel = Wheel.from_json(item)
                except ValueError:
                    continue
                state.wheels[wheel.filename] = wheel
            kernels[kernel_id] = state
        return kernels

    def close(self) -> None:
        self.host.close()

    async def forget(self, kernel_id: int, sandbox_id: int | None = None) -> None:
        """The kernel was shut down: its wheel directories go (the store row goes with the kernel's)."""
        self._kernels.pop(kernel_id, None)
        if self.enabled:
            await self.host.remove({kernel_id, sandbox_id or kernel_id})

    def installed(self, kernel_id: int) -> dict[str, Any]:
        state = self._kernels.get(kernel_id, InstalledPackages())
        return {
            "requirements": list(state.requirements),
            "wheels": [{"name": w.name, "version": w.version, "size": w.size} for w in state.wheels.values()],
            "bytes": state.size,
        }

    # --- the core's hooks -----------------------------------------------------------------------------------

    async def before_run(self, kernel: Kernel, code: str) -> Output | None:
        """Fetch what the cell's ``%pip install`` lines ask for; None when the cell may run, else the ``error``
        output to give the cell instead of running it."""
        if "pip" not in code:
            return None
        try:
            lines = [line for line in pip_lines(code) if line.requests]
            known = (self._kernels.get(kernel.id) or InstalledPackages()).names
            self.policy.check_request([r for line in lines for r in line.requests], known)  # the whole cell
            for line in lines:  # one resolution per line: the line installs exactly its own
                await self.fetch(kernel, list(line.requests))
        except errors.PackageError as error:
            return error_output(error)
        return None

    async def install(self, kernel: Kernel, texts: list[str]) -> dict[str, Any]:
        """Fetch and install ``texts`` in the kernel now (caller holds the kernel's lock, kernel running)."""
        requests = parse_requirements(texts)
        if not requests:
            raise errors.InvalidPackageRequest('No package named: give a list such as ["tabulate"].')
        wheels = await self.fetch(kernel, requests)
        assert kernel.client is not None
        output = await install_in_kernel(
            kernel.client, [r.requirement for r in requests], self.config.package_install_timeout
        )
        return {
            "installed": [{"name": w.name, "version": w.version, "size": w.size} for w in wheels],
            "output": output,
        }

    async def after_launch(self, kernel: Kernel) -> None:
        """Install again, from the cache, what the kernel had before its container was replaced (re-attached: only
        what is missing). What it had is read from the store again: another replica may have served it since (an
        adoption). A failure is logged (the kernel still starts, without them)."""
        if not self.enabled or kernel.client is None:
            return
        state = self._kernels.get(kernel.id)
        if self.settings.replicated:  # one of several replicas: the store knows best
            try:
                state = (await self._stored()).get(kernel.id) or state
            except Exception as error:  # the store did not answer: what this replica knows
                log.warning("kernel %d: packages not read from the store (%s)", kernel.id, error)
        if state is None or not state.requirements:
            return
        self._kernels[kernel.id] = state
        try:
            await self._reinstall(kernel, state)
        except (errors.PackageError, KernelCodeError, KernelUnresponsive, KernelGone, SandboxUnavailable) as error:
            log.warning("kernel %d: could not reinstall %s: %s", kernel.id, ", ".join(state.requirements), error)

    async def _reinstall(self, kernel: Kernel, state: InstalledPackages) -> None:
        assert kernel.client is not None
        wheels = list(state.wheels.values())
        if not await self.host.holds(kernel.sandbox_id, wheels):
            try:
                await self.host.link(kernel.sandbox_id, wheels, state.requirements)
            except CacheMiss:
                requests = [parse_requirement(text) for text in state.requirements]
                wheels = await self._resolve(kernel, requests, self.policy.max_request_bytes, fresh=True)
                await self.host.link(kernel.sandbox_id, wheels, state.requirements)
        await install_in_kernel(kernel.client, state.requirements, self.config.package_install_timeout)
        log.info("kernel %d: reinstalled %s", kernel.id, ", ".join(state.requirements))

    # --- fetching ---------------------------------------------------------------------------------------------

    async def fetch(self, kernel: Kernel, requests: list[PackageRequest]) -> list[Wheel]:
        """Policy, resolution, caps; then link the wheels into the kernel's directory and record them."""
        state = self._kernels.get(kernel.id) or InstalledPackages()
        self.policy.check_request(requests, state.names)
        budget = self.policy.byte_budget(state.size)
        wheels = await self._resolve(kernel, requests, budget)
        self._check_resolved(wheels, state)
        requirements = [request.requirement for request in requests]
        try:
            await self.host.link(kernel.sandbox_id, wheels, requirements)
        except CacheMiss:  # evicted between resolution and link: fetch again
            wheels = await self._resolve(kernel, requests, budget, fresh=True)
            self._check_resolved(wheels, state)
            await self.host.link(kernel.sandbox_id, wheels, requirements)
        for request in requests:  # one requirement per project: the latest asked for
            kept = [text for text in state.requirements if parse_requirement(text).name != request.name]
            state.requirements = [*kept, request.requirement]
        state.wheels.update({wheel.filename: wheel for wheel in wheels})
        self._kernels[kernel.id] = state
        await self.store.save_packages(
            kernel.id, state.requirements, [wheel.as_json() for wheel in state.wheels.values()]
        )
        return wheels

    def _check_resolved(self, wheels: list[Wheel], state: InstalledPackages) -> None:
        denied = sorted({wheel.name for wheel in wheels} & self.policy.deny)
        if denied:
            raise errors.PackageNotAllowed(
                f"{', '.join(denied)} (needed by the request) is on the deny list (JUPYCELL_PACKAGES_DENY)."
            )
        new = [wheel for wheel in wheels if wheel.filename not in state.wheels]
        total = sum(wheel.size for wheel in new)
        if total > self.policy.byte_budget(state.size):
            listing = ", ".join(f"{w.name} {w.version}" for w in new)
            raise self.policy.too_large(total, state.size, listing)

    async def _resolve(
        self, kernel: Kernel, requests: list[PackageRequest], budget: int, *, fresh: bool = False
    ) -> list[Wheel]:
        """The wheels ``requests`` need in the kernel's image: a cached resolution where it runs, else one helper
        run there (one at a time per site, image and request)."""
        sandbox_id, image = kernel.sandbox_id, kernel.image
        requirements = [request.requirement for request in requests]
        if not fresh and (wheels := await self.host.lookup(sandbox_id, image, requirements)) is not None:
            return wheels
        flight = (self.host.site(sandbox_id), image or "", tuple(sorted(requirements)))
        lock = self._in_flight.setdefault(flight, asyncio.Lock())
        async with lock:
            if not fresh and (wheels := await self.host.lookup(sandbox_id, image, requirements)) is not None:
                return wheels  # another request fetched it meanwhile
            fetched = await self.host.fetch(sandbox_id, image, requirements, budget, sorted(self.policy.deny))
        where = f" on {fetched.where}" if fetched.where else ""
        log.info("fetch helper for %s ran %.1f s%s", ", ".join(requirements), fetched.seconds, where)
        if fetched.failure is not None:
            raise self._failure(fetched.failure, requirements, budget, fetched.index_url)
        return fetched.wheels

    def _failure(
        self, result: dict[str, Any], requirements: list[str], budget: int, index_url: str
    ) -> errors.PackageError:
        """The user's error for a helper failure (untrusted JSON: only expected fields, as text)."""
        kind, message = str(result.get("kind", "failed")), str(result.get("message", ""))[:3000]
        name = str(result.get("name", "")) or ", ".join(requirements)
        platform = str(result.get("platform", "this kernel's Python and platform"))
        wanted = ", ".join(requirements)
        if kind == "sdist_only":
            return errors.NoCompatibleWheel(
                f"no wheel of {name} for {platform}; only an sdist exists, which JupyCell does not build."
            )
        if kind == "no_wheel":
            return errors.NoCompatibleWheel(
                f"no wheel of {name} for {platform}; the index has wheels of it for other Pythons or platforms "
                "only, and JupyCell does not build packages from source."
            )
        if kind == "not_found":
            versions = (
                [str(v) for v in result.get("versions", [])][-10:] if isinstance(result.get("versions"), list) else []
            )
            if versions:
                return errors.PackageNotFound(
                    f"no version of {name} matches the request ({wanted}); available: {', '.join(versions)}."
                )
            return errors.PackageNotFound(f"package {name} was not found on the index {index_url}.")
        if kind == "conflict":
            return errors.PackageConflict(
                f"{wanted} cannot be installed next to the packages preinstalled in the kernel image "
                f"(they stay as they are):\n{message}"
            )
        if kind == "unreachable":
            return errors.PackageIndexUnreachable(
                f"the package index {index_url} could not be reached from the fetch helper; nothing was "
                f"installed. ({message[:500]})"
            )
        if kind == "too_large":
            reported = result.get("total")
            total = reported if isinstance(reported, int) else budget + 1
            listing = ", ".join(
                f"{w.get('name')} {w.get('version')}" for w in result.get("wheels", []) if isinstance(w, dict)
            )[:500]
            state_bytes = self.policy.max_kernel_bytes - budget if budget < self.policy.max_request_bytes else 0
            return self.policy.too_large(total, state_bytes, listing or wanted)
        if kind == "denied":
            return errors.PackageNotAllowed(f"{message} (JUPYCELL_PACKAGES_DENY).")
        return errors.PackageFetchFailed(f"fetching {wanted} failed: {message}")


def error_output(error: errors.PackageError) -> Output:
    """A cell's nbformat ``error`` output for a package failure."""
    return {
        "output_type": "error",
        "ename": error.ename,
        "evalue": str(error),
        "traceback": [f"{error.ename}: {error}"],
    }
