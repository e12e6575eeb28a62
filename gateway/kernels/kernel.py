"""A kernel as the gateway knows it, its states and their transitions, and the outcome of running one of its cells."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from gateway.kernels.ports import ConnectionInfo, KernelConnection, SandboxHandle
from gateway.notebook import Cell, Notebook
from gateway.notebook.outputs import Output

log = logging.getLogger(__name__)


class KernelState(StrEnum):
    STARTING = "starting"  # its container is being created or replaced
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"  # no container; ``restart`` (or the pending replacement) brings it back


#: The allowed transitions. A kernel comes back from ``dead`` only through ``starting``.
TRANSITIONS: dict[KernelState, frozenset[KernelState]] = {
    KernelState.STARTING: frozenset({KernelState.STARTING, KernelState.IDLE, KernelState.DEAD}),
    KernelState.IDLE: frozenset(KernelState),
    KernelState.BUSY: frozenset(KernelState),
    KernelState.DEAD: frozenset({KernelState.STARTING, KernelState.DEAD}),
}

RunStatus = Literal["ok", "error", "timeout", "died"]


class InvalidTransition(RuntimeError):
    """A bug: the core tried a state change the model forbids."""


class KernelEvent(StrEnum):
    """What listeners (the kernel websockets) are told about a kernel's container."""

    STARTED = "started"  # ready: ``connection_info`` is set
    STOPPED = "stopped"  # gone on purpose (restart, replacement): a new one follows
    DIED = "died"  # gone by accident (crash, out of memory...): a new one follows
    SHUT_DOWN = "shut down"  # the kernel is gone for good
    MOVED = "moved"  # issue 11: another gateway replica serves the kernel now (its container is untouched)


#: Called on the event loop with each ``KernelEvent``; must not block.
KernelListener = Callable[["Kernel", KernelEvent], None]


@dataclass
class Kernel:
    """A kernel: identity, owner, notebook, its sandbox and connection while it has one, and a lock that makes the
    work on it (runs, file transfers, websocket executions) happen one at a time, in arrival order."""

    id: int
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))  # the id Jupyter's own protocol uses
    owner: str | None = None  # id of the API key that started it (None: no keys configured)
    runtime: str = "runc"  # container runtime (runc, runsc), kept across restarts
    image: str | None = None  # an allowed image of its own (issue 13), kept across restarts; None: the deployment's
    env: dict[str, str] = field(default_factory=dict)  # set in its container at every start (Jupyter API's env)
    notebook: Notebook = field(default_factory=Notebook)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    handle: SandboxHandle | None = field(default=None, repr=False)
    client: KernelConnection | None = field(default=None, repr=False)
    state: KernelState = KernelState.STARTING
    last_death: str | None = None
    created: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    listeners: set[KernelListener] = field(default_factory=set, repr=False)
    replacing: asyncio.Task[None] | None = field(default=None, repr=False)  # the next user waits for it
    external: set[str] = field(default_factory=set, repr=False)  # websocket executions the kernel has not finished
    _external_done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.state = KernelState(self.state)
        self._external_done.set()

    @property
    def connection_info(self) -> ConnectionInfo | None:
        return self.handle.connection_info if self.handle is not None else None

    @property
    def container_id(self) -> str:
        return self.handle.container_id if self.handle is not None else ""

    @property
    def sandbox_id(self) -> int:
        """The id the backend knows its sandbox by (``SandboxHandle.kernel_id``): the kernel's own id, or the
        warm-pool id of the container it took at a restart. Every backend operation on the sandbox uses it."""
        return self.handle.kernel_id if self.handle is not None else self.id

    @property
    def alive(self) -> bool:
        """Counts against the limits: not dead (starting and replacing kernels count)."""
        return self.state is not KernelState.DEAD

    def set_state(self, state: KernelState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"kernel {self.id}: {self.state} -> {state} is not allowed")
        self.state = state

    def observe_execution_state(self, execution_state: Any) -> None:
        """A kernel-wide ``status`` message seen on a websocket: follow busy/idle while the kernel is up."""
        if execution_state in ("busy", "idle") and self.state in (KernelState.BUSY, KernelState.IDLE):
            self.state = KernelState(execution_state)

    @property
    def busy(self) -> bool:
        """Some work holds the kernel: a seed API run or file transfer (its lock), or a websocket execution."""
        return self.lock.locked() or bool(self.external)

    def begin_external(self, msg_id: str) -> None:
        """An execution sent by a websocket client (outside the lock) started."""
        self.external.add(msg_id)
        self._external_done.clear()

    def end_external(self, msg_id: str) -> None:
        self.external.discard(msg_id)
        if not self.external:
            self._external_done.set()

    async def external_finished(self) -> None:
        """Wait until no websocket execution is in progress."""
        await self._external_done.wait()

    def touch(self) -> None:
        self.last_activity = time.time()

    def notify(self, event: KernelEvent) -> None:
        """Tell every listener what happened to the kernel's container."""
        for listener in list(self.listeners):
            try:
                listener(self, event)
            except Exception:
                log.exception("kernel %d: a listener failed on %r", self.id, event)


@dataclass
class RunResult:
    """The outcome of running one cell."""

    cell: Cell
    status: RunStatus
    execution_count: int | None
    outputs: list[Output]
    truncated: bool = False
    detail: str | None = None  # what happened, for timeout and died
    state_kept: bool = True  # False when the kernel had to be replaced

    def as_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "status": self.status,
            "execution_count": self.execution_count,
            "truncated": self.truncated,
            "detail": self.detail,
            "kernel_state_kept": self.state_kept,
        }
