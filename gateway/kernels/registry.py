"""The kernels of this gateway: lookup by either id, visibility, admission limits, and why a kernel went away."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator

from gateway.errors import KernelNotFound, TooManyKernels
from gateway.kernels.kernel import Kernel

# Largest integer a JSON client (JavaScript included) reads exactly.
_MAX_KERNEL_ID = 2**53 - 1
_MIN_KERNEL_ID = 10**9
_TOMBSTONES = 10_000


def new_kernel_id() -> int:
    """A random, unguessable kernel id that stays a plain JSON integer."""
    return _MIN_KERNEL_ID + secrets.randbelow(_MAX_KERNEL_ID - _MIN_KERNEL_ID)


def limit_reached(limit: str, owner: str | None, max_kernels: int, max_kernels_per_key: int) -> TooManyKernels:
    """The refusal of a start by ``owner``: ``limit`` is ``max_kernels`` or ``max_kernels_per_key``."""
    if limit == "max_kernels":
        return TooManyKernels(f"Kernel limit reached: this gateway runs at most {max_kernels} kernels (max_kernels).")
    return TooManyKernels(
        f"Kernel limit reached: key {owner!r} may run at most {max_kernels_per_key} kernels "
        "(max_kernels_per_key); shut one down first."
    )


class KernelRegistry:
    """Every kernel of this gateway, live or dead (a dead one keeps its cells until it is restarted or expires)."""

    def __init__(self, max_kernels: int, max_kernels_per_key: int) -> None:
        self.max_kernels = max_kernels
        self.max_kernels_per_key = max_kernels_per_key
        self._kernels: dict[int, Kernel] = {}
        self._pending: dict[str | None, int] = {}  # starts admitted but not registered yet, by owner
        self._gone_because: OrderedDict[int, str] = OrderedDict()  # why recently removed kernels went away

    def __iter__(self) -> Iterator[Kernel]:
        return iter(list(self._kernels.values()))

    def __len__(self) -> int:
        return len(self._kernels)

    def __contains__(self, kernel: Kernel) -> bool:
        return self._kernels.get(kernel.id) is kernel

    def get(self, kernel_id: int) -> Kernel:
        """The kernel, or KernelNotFound (saying why it went away, when that is known)."""
        try:
            return self._kernels[kernel_id]
        except KeyError:
            raise KernelNotFound(kernel_id, self._gone_because.get(kernel_id)) from None

    def find(self, any_id: str) -> Kernel:
        """A kernel by its seed API id (digits) or its Jupyter UUID."""
        if any_id.isdigit() and (kernel := self._kernels.get(int(any_id))) is not None:
            return kernel
        for kernel in self._kernels.values():
            if kernel.uuid == any_id:
                return kernel
        raise KernelNotFound(any_id)

    def by_container(self, container_id: str) -> Kernel | None:
        return next((k for k in self._kernels.values() if container_id and k.container_id == container_id), None)

    def visible_to(self, owns: Callable[[str | None], bool]) -> list[Kernel]:
        """The kernels whose owner ``owns`` accepts (a caller's own, or all of them for an admin)."""
        return [k for k in self._kernels.values() if owns(k.owner)]

    def live(self) -> int:
        return sum(1 for k in self._kernels.values() if k.alive)

    # --- admission ------------------------------------------------------------------------------------------

    def admit(self, owner: str | None) -> None:
        """Count a start against the limits (live kernels and starts in progress; dead kernels do not count).
        Raises TooManyKernels. Every ``admit`` is followed by ``add`` or ``release``."""
        pending = sum(self._pending.values())
        if self.live() + pending >= self.max_kernels:
            raise limit_reached("max_kernels", owner, self.max_kernels, self.max_kernels_per_key)
        if owner is not None:
            mine = sum(1 for k in self._kernels.values() if k.alive and k.owner == owner) + self._pending.get(owner, 0)
            if mine >= self.max_kernels_per_key:
                raise limit_reached("max_kernels_per_key", owner, self.max_kernels, self.max_kernels_per_key)
        self._pending[owner] = self._pending.get(owner, 0) + 1

    def release(self, owner: str | None) -> None:
        """An admitted start ended (registered or failed)."""
        left = self._pending.get(owner, 0) - 1
        if left > 0:
            self._pending[owner] = left
        else:
            self._pending.pop(owner, None)

    # --- membership -----------------------------------------------------------------------------------------

    def add(self, kernel: Kernel) -> None:
        self._kernels[kernel.id] = kernel

    def remove(self, kernel_id: int, reason: str | None = None) -> Kernel | None:
        """Forget a kernel; a ``reason`` is remembered (for a while) and told to whoever asks for it afterwards."""
        if reason:
            self._gone_because[kernel_id] = reason
            while len(self._gone_because) > _TOMBSTONES:
                self._gone_because.popitem(last=False)
        return self._kernels.pop(kernel_id, None)
