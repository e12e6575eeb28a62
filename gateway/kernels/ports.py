"""The core's ports: what it needs from the world, as protocols. Adapters implement them; ``gateway.main`` wires them.

- ``SandboxBackend``: the containers kernels run in (today ``gateway.adapters.docker.DockerSandbox``, the ``local``
  backend). It owns everything about where a kernel runs: container, socket directory, connection addresses.
- ``KernelConnector`` / ``KernelConnection``: talking Jupyter's protocol to one kernel (``gateway.protocol``).
- ``KernelStore``: durable kernels, cells and runs (``gateway.adapters.sql.Store``).
- ``KernelObserver``: told of every happening (live events, metrics, run usage: ``gateway.metrics.observer``).
- ``KernelPackages``: packages on demand (issue 13: ``gateway.packages.service.PackageService``): fetched before a
  cell that asks for them is sent, installed again whenever a kernel gets a container back.

The records exchanged through these ports (``SandboxHandle``, ``ContainerExit``, ``KernelRecord``...) are plain data
defined here, so the core never imports an adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

from gateway.notebook import Cell
from gateway.notebook.outputs import Output, OutputCollector

if TYPE_CHECKING:
    from gateway.kernels.kernel import Kernel, RunResult
    from gateway.kernels.pool import ReadyKernel


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
    # CurveZMQ (the agents backend's relays), Z85 text: the server's public key and the gateway's own keypair.
    # Not jupyter_client's curve_publickey/curve_secretkey, which are the kernel's own keypair.
    curve_server_key: str
    curve_client_public: str
    curve_client_secret: str


#: Connection info fields never stored with a handle's state.
SECRET_CONNECTION_FIELDS = frozenset({"key", "curve_client_secret"})


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
        connection = {k: v for k, v in self.connection_info.items() if k not in SECRET_CONNECTION_FIELDS}
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
    cause: str | None = None  # the backend's own words, when it knows better (e.g. "node n1 lost")

    def describe(self, mem_limit_mb: int) -> str:
        if self.cause:
            return self.cause
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

    async def check_ready(self, runtimes: tuple[str, ...], images: tuple[str, ...] = ()) -> None:
        """Start-up check (engine answers, images present, runtimes registered); raises SandboxUnavailable."""
        ...

    async def ping(self) -> None:
        """Raise SandboxUnavailable unless the engine answers."""
        ...

    async def start(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str], *, pooled: bool = False,
        image: str | None = None, node: str | None = None,
    ) -> SandboxHandle:  # fmt: skip
        """Create and start the kernel's container (labelled with both its ids) with fresh connection info; return
        once it exists (the kernel inside may not answer yet). ``image``: an allowed image of its own (None: the
        deployment's). ``node``: one of a ``NodeBackend``'s ``nodes()`` to start it on (None: placement decides;
        a backend of one machine ignores it). Raises KernelStartFailed."""
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


#: Called on the loop: kernel ``kernel_id``'s sandbox (same container, memory) is reached at a new address now.
MoveCallback = Callable[[int], None]


@runtime_checkable
class NodeBackend(Protocol):
    """A backend over several nodes (the agents backend): the warm pool keeps its size on each node."""

    def nodes(self) -> list[str]:
        """The nodes that take kernels now, the one placement prefers first."""
        ...

    def node_of(self, state: dict[str, Any]) -> str | None:
        """The node of a sandbox, from its ``SandboxHandle.to_state()``."""
        ...

    def listed(self) -> set[str]:
        """The nodes whose containers the last ``list_own`` gave: a kernel on another node (silent, or not found
        yet) is not known to be gone."""
        ...


@runtime_checkable
class MovingBackend(Protocol):
    """A backend whose kernels can be reached at a new address while they keep running (the agents backend: a
    node's agent that came back elsewhere). ``restore`` then gives the handle at the new address."""

    def watch_moves(self, on_moved: MoveCallback) -> None: ...


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
        """Run ``code``; at the deadline interrupt it once: an interrupt request, or ``escalate`` (a SIGINT through
        the engine) if the kernel neither acknowledges it nor finishes shortly after. Raise KernelUnresponsive if
        it is still busy ``interrupt_grace`` seconds after that."""
        ...

    async def evaluate(self, expression: str, timeout: float) -> str: ...

    async def interrupt(self, acknowledged_within: float = 0.0) -> bool:
        """Send an interrupt request; True if the kernel acknowledged it (so has signalled itself) within
        ``acknowledged_within`` seconds."""
        ...

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
    image: str | None = None  # an image of its own (issue 13); None: the deployment's
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


class KernelPackages(Protocol):
    """Packages on demand (issue 13), as the core uses them. The kernel's container never downloads anything: what
    it asks for is fetched outside and handed to it read-only; what it installed is part of its state."""

    async def start_up(self, kernel_ids: set[int]) -> None:
        """Load what the stored kernels (``kernel_ids``, dead or alive) installed, before they are recovered."""
        ...

    async def before_run(self, kernel: Kernel, code: str) -> Output | None:
        """Fetch what ``code``'s ``%pip install`` / ``!pip install`` lines ask for, before it is sent (the lines then
        install offline). None: send it; else the ``error`` output the run ends with instead (nothing was sent)."""
        ...

    async def after_launch(self, kernel: Kernel) -> None:
        """The kernel got a container back (restart, replacement, re-attach): install again what it had, before it
        is handed back. Never raises: a failure is logged and the kernel starts without them."""
        ...

    async def install(self, kernel: Kernel, requirements: list[str]) -> dict[str, Any]:
        """Fetch and install ``requirements`` now (caller holds the kernel's lock; the kernel is up). Raises
        ``gateway.packages.errors.PackageError`` subclasses."""
        ...

    def installed(self, kernel_id: int) -> dict[str, Any]:
        """What the kernel asked for and the wheels fetched for it."""
        ...

    async def forget(self, kernel_id: int, sandbox_id: int | None = None) -> None:
        """The kernel is gone for good: its wheel directories go (its own id's, and its sandbox id's)."""
        ...

    def close(self) -> None: ...


# --- issue 11: state shared by the replicas of one deployment (PostgreSQL) -----------------------------------------
# Implemented by ``gateway.adapters.sql.coordination``; used by ``gateway.kernels.admission``,
# ``gateway.kernels.shared_pool`` and ``gateway.kernels.leader``. With SQLite (one replica) none of it is used.


@dataclass(frozen=True)
class AdmissionRefusal:
    """Why a start was refused: the limit reached (``max_kernels`` or ``max_kernels_per_key``)."""

    limit: str


@dataclass(frozen=True)
class PooledKernel:
    """A warm-pool kernel as the shared pool records it: started and answering, owned by no one yet."""

    kernel_id: int
    jupyter_id: str
    runtime: str
    sandbox: dict[str, Any]  # its backend's ``SandboxHandle.to_state()``
    hmac_key: str = field(repr=False)
    ready_at: float


@dataclass(frozen=True)
class PoolCounts:
    """The shared pool of one runtime: kernels ready to claim, and being started."""

    ready: int
    starting: int


class AdmissionLedger(Protocol):
    """Kernel starts admitted across every replica of the deployment: live kernels plus pending starts, counted
    and recorded in one atomic step. A pending start expires ``ttl`` seconds after its admission (its replica
    died mid-start)."""

    async def admit(self, owner: str | None, max_kernels: int, max_per_key: int, ttl: float) -> str | AdmissionRefusal:
        """A ticket for the start, or which limit refused it."""
        ...

    async def bind(self, ticket: str, kernel_id: int) -> None:
        """The start's kernel id is known: once that kernel is stored, the pending start no longer counts."""
        ...

    def release(self, ticket: str) -> None:
        """The start ended (stored or failed): forget it. Returns at once; the write happens in the background."""
        ...


class PoolLedger(Protocol):
    """The warm pool's kernels of the deployment. A claim hands each ready kernel out exactly once, whichever
    replica asks."""

    async def reserve(self, kernel_id: int, jupyter_id: str, runtime: str, filler: str) -> None:
        """Record a pool kernel about to be started by ``filler`` (the leader's token)."""
        ...

    async def mark_ready(self, kernel_id: int, sandbox: dict[str, Any], hmac_key: str) -> bool:
        """The reserved kernel answers: claimable from now on. False if its record was dropped meanwhile."""
        ...

    async def claim(self, runtime: str, prefer: Collection[int] = ()) -> PooledKernel | None:
        """A ready kernel of ``runtime`` (the first of ``prefer`` that is ready, else the oldest), now the caller's
        alone; None if there is none."""
        ...

    async def ready(self, runtime: str, limit: int) -> list[PooledKernel]:
        """Up to ``limit`` ready kernels of ``runtime``, oldest first (not claimed: a claim may take them)."""
        ...

    async def drop(self, kernel_id: int) -> bool:
        """Forget a pool kernel (failed, dead, swept). False if it was not recorded (any more)."""
        ...

    async def drop_container(self, container_id: str) -> int | None:
        """Forget the unclaimed pool kernel in ``container_id``; its kernel id, None if there was none."""
        ...

    async def counts(self, runtime: str) -> PoolCounts: ...

    async def sweep_claimed(self, older_than: float) -> int:
        """Forget claimed records whose kernel is stored, or older than ``older_than`` seconds; how many."""
        ...

    async def unclaimed(self) -> list[tuple[int, str, str]]:
        """Every pool kernel not claimed: (kernel id, state ``starting``/``ready``, filler)."""
        ...

    async def known_kernel_ids(self) -> set[int]:
        """Every kernel id the deployment knows of: stored kernels, pool kernels, bound pending starts."""
        ...

    async def expire_admissions(self) -> int:
        """Forget pending starts past their expiry; how many."""
        ...


class LeaderLock(Protocol):
    """One replica of the deployment at a time holds it; it is lost when its holder's process or connection dies."""

    async def try_acquire(self) -> bool:
        """True if this process holds the lock now (acquired now or before, and its connection is alive)."""
        ...

    async def resign(self) -> None:
        """Let the lock go (another replica gets it on its next try)."""
        ...


class WarmPool(Protocol):
    """What the core uses of a warm pool: ``gateway.kernels.pool.KernelPool`` (one replica, claims in memory) or
    ``gateway.kernels.shared_pool.SharedKernelPool`` (several replicas, claims through a ``PoolLedger``)."""

    def start(self) -> None: ...

    async def close(self) -> None: ...

    async def claim(self, runtime: str) -> ReadyKernel | None:
        """A ready kernel of ``runtime``, now the caller's alone, or None (start one cold)."""
        ...

    def discard(self, container_id: str) -> bool: ...

    def moved(self, sandbox_id: int) -> None:
        """An unclaimed kernel's sandbox is reached at a new address now: no connection made to it before is
        handed out."""
        ...

    def status(self) -> dict[str, Any]: ...


class Coordination(AdmissionLedger, PoolLedger, LeaderLock, Protocol):
    """Everything the replicas of one deployment share beyond the ``KernelStore``."""

    async def close(self) -> None: ...


# --- several replicas (issue 11) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelLocation:
    """Where a stored kernel is served: its owner replica (None: nobody), that owner's epoch, whether the owner's
    lease is alive, and the URL other replicas forward its requests to."""

    kernel_id: int
    owner: str | None
    epoch: int
    owner_alive: bool
    owner_url: str | None


@dataclass(frozen=True)
class Adopted:
    """A kernel this replica took over: its record (cells included) and whether runs were still open on it (now
    recorded ``interrupted``: what ran is cut off)."""

    record: KernelRecord
    had_open_runs: bool


@dataclass(frozen=True)
class ReplicaPeer:
    """Another live replica of the deployment: its id and the URL the replicas reach it at."""

    replica_id: str
    url: str


class KernelOwnership(Protocol):
    """Which replica serves which kernel, with leases and epochs (``gateway.adapters.sql.Ownership``).

    A replica's lease is alive while it renews it (``heartbeat``); its kernels' leases are its own. Every kernel
    write of this replica carries the epoch it holds for the kernel: a write after another replica adopted the
    kernel is refused (``KernelMoved``) and ``on_lost`` is called with the kernel's id, on the loop.
    """

    replica_id: str

    def lease_valid(self) -> bool:
        """This replica's lease is certainly alive (renewed less than a lease ago, by its own clock)."""
        ...

    def holds(self, kernel_id: int) -> bool:
        """This replica holds an epoch for the kernel."""
        ...

    def release(self, kernel_id: int) -> None:
        """Forget the epoch held for the kernel (it was dropped or deleted)."""
        ...

    def watch_lost(self, on_lost: Callable[[int], None]) -> None: ...

    async def join(self) -> None:
        """Register this replica (its first heartbeat); predecessors on this host whose process is gone are
        taken for dead at once."""
        ...

    async def heartbeat(self) -> None: ...

    async def leave(self) -> None:
        """This replica stops: its lease ends now, so others adopt what it still owns at once."""
        ...

    async def others_alive(self) -> bool:
        """Another replica of the instance holds a live lease."""
        ...

    async def claim_orphans(self) -> list[int]:
        """Start-up: take every kernel of the instance that no live replica owns (this one's own included); their
        open runs stay as they are (the start-up recovery interrupts them)."""
        ...

    async def orphans(self) -> list[KernelLocation]:
        """Kernels of the instance whose owner's lease has expired (or that have no owner)."""
        ...

    async def locate(self, kernel_ref: int | str) -> KernelLocation | None:
        """The kernel by seed API id or Jupyter id, with its owner; None if no such kernel is stored."""
        ...

    async def peers(self) -> list[ReplicaPeer]:
        """The other replicas of the instance whose lease is alive, each with its URL."""
        ...

    async def stored_elsewhere(self, answered: Collection[str]) -> list[KernelRecord]:
        """The stored kernels of the instance (cells included) served neither by this replica nor by one of the
        replicas ``answered``: those of replicas that did not answer, or dead and not adopted yet, or of nobody."""
        ...

    async def adopt(self, kernel_id: int, seen_epoch: int, detail: str) -> Adopted | None:
        """Take the kernel over if its owner is still the one seen at ``seen_epoch`` and not alive: bump the epoch,
        record its open runs ``interrupted`` (``detail``). None if another replica was faster or the owner lives."""
        ...
