"""The core's ports: what it needs from the world, as protocols. Adapters implement them; ``gateway.main`` wires them.

- ``SandboxBackend``: the containers kernels run in (today ``gateway.adapters.docker.DockerSandbox``, the ``local``
  backend). It owns everything about where a kernel runs: container, socket directory, connection addresses.
- ``KernelConnector`` / ``KernelConnection``: talking Jupyter's protocol to one kernel (``gateway.protocol``).
- ``KernelStore``: durable kernels, cells and runs (``gateway.adapters.sql.Store``).
- ``KernelObserver``: told of every happening (live events, metrics, run usage: ``gateway.metrics.observer``).

The records exchanged through these ports (``SandboxHandle``, ``ContainerExit``, ``KernelRecord``...) are plain data
defined here, so the core never imports an adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from gateway.notebook import Cell
from gateway.notebook.outputs import Output, OutputCollector

if TYPE_CHECKING:
    from gateway.kernels.kernel import Kernel, RunResult


class ConnectionInfo(TypedDict, total=False):
    """Jupyter connection info, as the gateway connects to a kernel. Holds the HMAC key: secret."""

    transport: str
    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    key: str
    signature_scheme: str
    kernel_name: str


@dataclass(frozen=True)
class SandboxHandle:
    """A kernel's running sandbox, as its backend describes it. ``to_state()`` is what the store keeps so that a
    restarted gateway can ``restore`` it (the connection info there holds no key: the key is stored apart).

    ``kernel_id`` is the id the sandbox was started for (``SandboxBackend.start``), its *sandbox id*: every backend
    operation on this sandbox is called with it. It is the kernel's own id, except after a restart or replacement
    from the warm pool: the kernel then runs in a container started for a pool id, and keeps that handle (the core
    maps; the backend needs to know nothing of it). ``to_state()["sandbox_id"]`` keeps it for ``restore``."""

    kernel_id: int
    container_id: str
    name: str
    connection_info: ConnectionInfo = field(repr=False)

    def to_state(self) -> dict[str, Any]:
        connection = {k: v for k, v in self.connection_info.items() if k != "key"}
        return {
            "container_id": self.container_id,
            "name": self.name,
            "connection": connection,
            "sandbox_id": self.kernel_id,
        }

    @property
    def key(self) -> str:
        return str(self.connection_info.get("key", ""))


@dataclass(frozen=True)
class ContainerExit:
    """How a kernel's container ended, as its engine tells it."""

    exit_code: int | None  # None: the container is gone
    oom_killed: bool

    def describe(self, mem_limit_mb: int) -> str:
        if self.oom_killed:
            return f"out of memory (limit {mem_limit_mb} MiB)"
        if self.exit_code is None:
            return "its container was removed"
        if self.exit_code >= 128:
            return f"killed by signal {self.exit_code - 128} (exit code {self.exit_code})"
        return f"exited with code {self.exit_code}"


@dataclass(frozen=True)
class OwnContainer:
    """A container of this gateway instance as its engine lists it."""

    name: str
    container_id: str
    kernel_id: int | None  # None: not labelled with a kernel id
    exit: ContainerExit | None  # None while it runs


#: Engine event, called on the loop: the container ``container_id`` of kernel ``kernel_id`` died.
DeathCallback = Callable[[int, str], None]


class SandboxBackend(Protocol):
    """Kernel containers: hardened, limited, each with its own sockets; found again by label after a restart.

    Every ``kernel_id`` argument is a *sandbox id*: the id the sandbox was started with (``start``), which is
    ``SandboxHandle.kernel_id``. The core may run a kernel in a sandbox started for another id (a warm-pool
    container taken at a restart); it then calls every operation with the sandbox's id, never the kernel's."""

    @property
    def limits(self) -> dict[str, Any]:
        """The sandbox profile (image, runtime, limits) kernels get, as listings show it."""
        ...

    async def check_ready(self, runtimes: tuple[str, ...]) -> None:
        """Start-up check (engine answers, image present, runtimes registered); raises SandboxUnavailable."""
        ...

    async def ping(self) -> None:
        """Raise SandboxUnavailable unless the engine answers."""
        ...

    async def start(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str], *, pooled: bool = False
    ) -> SandboxHandle:
        """Create and start the kernel's container (labelled with both its ids) with fresh connection info; return
        once it exists (the kernel inside may not answer yet). Raises KernelStartFailed."""
        ...

    async def seal(self, handle: SandboxHandle) -> None:
        """The kernel has bound its sockets: take from it whatever it needed only to start (its socket directory)."""
        ...

    def restore(self, kernel_id: int, state: dict[str, Any], key: str) -> SandboxHandle:
        """The handle of a kernel started by an earlier run of this gateway, from ``SandboxHandle.to_state()``;
        ``kernel_id`` is the sandbox id (``state["sandbox_id"]``) and is the returned handle's ``kernel_id``."""
        ...

    async def signal(self, kernel_id: int, signal: str) -> None:
        """Send a signal (e.g. ``SIGINT``) to the kernel's process through the engine. Gone is fine."""
        ...

    async def exit_status(self, kernel_id: int) -> ContainerExit | None:
        """None while the kernel's container runs; how it ended otherwise."""
        ...

    async def logs(self, kernel_id: int, tail: int = 40) -> str:
        """The end of the container's own log ("" when there is none)."""
        ...

    async def remove(self, kernel_id: int) -> None:
        """Kill and remove the kernel's container and its sockets. Idempotent."""
        ...

    async def remove_container(self, name: str) -> None:
        """Kill and remove one container of this instance by name or id. Idempotent."""
        ...

    async def list_own(self) -> list[OwnContainer]:
        """Every container of this gateway instance, running or not."""
        ...

    async def remove_leftovers(self, keep: set[int]) -> None:
        """Remove per-kernel resources (socket directories) of every sandbox id not in ``keep``."""
        ...

    async def remove_all(self) -> int:
        """Remove every container of this instance; return how many there were."""
        ...

    def watch_deaths(
        self, loop: asyncio.AbstractEventLoop, on_death: DeathCallback, on_resumed: Callable[[], None]
    ) -> None:
        """Call ``on_death`` on the loop for each container of this instance that dies; ``on_resumed`` when the
        event stream broke and resumed (deaths may have been missed)."""
        ...

    def close(self) -> None: ...


class Execution(Protocol):
    """What one execute request produced."""

    status: str  # "ok" | "error" | "timeout" (interrupted at the deadline, kernel state kept)
    execution_count: int | None
    outputs: list[Output]
    truncated: bool


class KernelConnection(Protocol):
    """One kernel's channels. Raises ``KernelGone`` once ``mark_dead`` was called, ``KernelUnresponsive`` on
    deadlines (both in ``gateway.errors``)."""

    async def wait_ready(self, timeout: float) -> None: ...

    async def execute(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        interrupt_grace: float,
        escalate: Callable[[], Any] | None = None,
    ) -> Execution:
        """Run ``code``; at the deadline interrupt it, call ``escalate`` if it is still busy after a short pause,
        and raise KernelUnresponsive if it is still busy ``interrupt_grace`` seconds after the interrupt."""
        ...

    async def evaluate(self, expression: str, timeout: float) -> str: ...

    async def interrupt(self) -> None: ...

    def mark_dead(self, cause: str) -> None: ...

    def close(self) -> None: ...


class KernelConnector(Protocol):
    """Makes connections to kernels."""

    def connect(self, connection_info: ConnectionInfo) -> KernelConnection: ...


@dataclass
class KernelRecord:
    """A kernel as stored. ``sandbox`` is its backend's handle state (``SandboxHandle.to_state()``), without key."""

    id: int
    uuid: str
    instance: str
    owner: str | None
    runtime: str
    env: dict[str, str]
    sandbox: dict[str, Any]
    hmac_key: str = field(repr=False)
    limits: dict[str, Any]
    state: str
    last_death: str | None
    created_at: float
    last_activity_at: float
    cells: list[Cell] = field(default_factory=list)
    notebook_version: int = 0

    @property
    def container_id(self) -> str:
        return str(self.sandbox.get("container_id", ""))

    @property
    def sandbox_id(self) -> int:
        """The id its sandbox was started for (``SandboxHandle.kernel_id``); its own id for older records."""
        return int(self.sandbox.get("sandbox_id") or self.id)


@dataclass(frozen=True)
class InterruptedRun:
    """A run found in flight at start-up: the gateway stopped while it ran."""

    kernel_id: int
    cell_number: int
    outputs: list[dict[str, Any]]


class KernelStore(Protocol):
    """Durable kernels, cells and runs. Every change a caller is told about is written here first."""

    async def load_kernels(self, instance: str) -> list[KernelRecord]: ...

    async def add_kernel(self, record: KernelRecord) -> None: ...

    async def update_kernel(self, kernel_id: int, **values: Any) -> None:
        """Update columns: ``state``, ``last_death``, ``container_id``, ``last_activity_at``."""
        ...

    async def delete_kernel(self, kernel_id: int) -> None: ...

    async def add_cell(
        self, kernel_id: int, cell: Cell, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None: ...

    async def save_cell(
        self, kernel_id: int, cell: Cell, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None: ...

    async def delete_cell(
        self, kernel_id: int, number: int, *, stale: dict[int, bool] | None = None, version: int | None = None
    ) -> None: ...

    async def kernel_replaced(
        self,
        kernel_id: int,
        notebook: list[Cell],
        *,
        sandbox: dict[str, Any],
        hmac_key: str,
        limits: dict[str, Any],
        state: str,
        last_death: str | None,
    ) -> None: ...

    def begin_run(self, run_id: str, kernel_id: int, cell: Cell, started_at: float) -> None: ...

    def save_partial_outputs(self, run_id: str, outputs: list[Output], truncated: bool) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        kernel_id: int,
        cell: Cell,
        *,
        truncated: bool,
        detail: str | None,
        last_activity: float,
        started_at: float,
        stale: dict[int, bool],
    ) -> None: ...

    def abandon_run(self, run_id: str, detail: str) -> None: ...

    async def interrupt_open_runs(self, instance: str, detail: str) -> list[InterruptedRun]: ...


#: Called with (cell number, output) as each output of a run arrives.
OnOutput = Callable[[int, Output], None]


class KernelObserver(Protocol):
    """Told of what happens to kernels, cells and runs, on the loop. Best effort: it never fails the core's work."""

    def kernel_started(self, kernel: Kernel, source: str, began: float) -> None:
        """``source``: ``pool`` or ``cold``; ``began``: ``time.monotonic()`` when the start was asked for."""
        ...

    def kernel_gone(self, kernel: Kernel, reason: str | None) -> None: ...

    def kernel_died(self, kernel: Kernel) -> None:
        """Lost outside a run (a run's own loss is in its result); a replacement follows."""
        ...

    def cell_added(self, kernel: Kernel, cell: Cell) -> None: ...

    def cell_edited(self, kernel: Kernel, cell: Cell) -> None: ...

    def cell_deleted(self, kernel: Kernel, number: int) -> None: ...

    def run_started(self, kernel: Kernel, cell: Cell) -> Any:
        """Returns a mark that ``run_finished`` gets back."""
        ...

    def outputs_of(self, kernel: Kernel, cell: Cell, forward: OnOutput | None) -> Callable[[Output], None] | None:
        """The ``on_output`` of the run's collector: sees each output, then hands it to ``forward``."""
        ...

    async def run_finished(self, kernel: Kernel, result: RunResult, mark: Any) -> None:
        """May set ``result.cell.usage`` (stored with the run)."""
        ...

    def run_abandoned(self, kernel: Kernel, cell: Cell) -> None: ...
