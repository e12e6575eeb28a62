"""Admission: whether a new kernel may start, counted against ``max_kernels`` and ``max_kernels_per_key``.

Every ``admit`` is followed by ``release`` (the start was stored or failed); ``bind`` says which kernel id the start
got, as soon as that is known (before the kernel is stored).

- ``LocalAdmission`` (one replica, SQLite): today's in-memory count in the ``KernelRegistry``, no extra cost.
- ``SharedAdmission`` (several replicas on PostgreSQL): counted in the database through an ``AdmissionLedger``,
  live kernels of every replica plus pending starts, in one atomic step, so limits hold exactly across replicas.
"""

from __future__ import annotations

from typing import Protocol

from gateway.kernels.ports import AdmissionLedger, AdmissionRefusal
from gateway.kernels.registry import KernelRegistry, limit_reached


class Admission(Protocol):
    async def admit(self, owner: str | None) -> object:
        """A ticket for one start by ``owner``; raises TooManyKernels."""
        ...

    async def bind(self, ticket: object, kernel_id: int) -> None: ...

    def release(self, ticket: object) -> None: ...


class LocalAdmission:
    """The registry's own count (live kernels of this process and its starts in progress)."""

    def __init__(self, registry: KernelRegistry) -> None:
        self.registry = registry

    async def admit(self, owner: str | None) -> object:
        self.registry.admit(owner)
        return _Owner(owner)

    async def bind(self, ticket: object, kernel_id: int) -> None:
        return None

    def release(self, ticket: object) -> None:
        assert isinstance(ticket, _Owner)
        self.registry.release(ticket.owner)


class _Owner:
    __slots__ = ("owner",)

    def __init__(self, owner: str | None) -> None:
        self.owner = owner


class SharedAdmission:
    """Limits counted by the deployment's ``AdmissionLedger``. A pending start that outlives ``ttl`` seconds (its
    replica died) stops counting."""

    def __init__(self, ledger: AdmissionLedger, *, max_kernels: int, max_kernels_per_key: int, ttl: float) -> None:
        self.ledger = ledger
        self.max_kernels = max_kernels
        self.max_kernels_per_key = max_kernels_per_key
        self.ttl = ttl

    async def admit(self, owner: str | None) -> object:
        result = await self.ledger.admit(owner, self.max_kernels, self.max_kernels_per_key, self.ttl)
        if isinstance(result, AdmissionRefusal):
            raise limit_reached(result.limit, owner, self.max_kernels, self.max_kernels_per_key)
        return result

    async def bind(self, ticket: object, kernel_id: int) -> None:
        assert isinstance(ticket, str)
        await self.ledger.bind(ticket, kernel_id)

    def release(self, ticket: object) -> None:
        assert isinstance(ticket, str)
        self.ledger.release(ticket)
