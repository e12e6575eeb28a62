"""A kernel as the gateway knows it, and the outcome of running one of its cells."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.kernels.client import KernelClient
from gateway.notebook import Cell, Notebook

log = logging.getLogger(__name__)

#: Told what happens to a kernel's container: "started" (ready, ``connection_info`` set), "stopped" (gone; a new
#: one may follow) or "shut down" (the kernel is gone for good). Called on the event loop; must not block.
KernelListener = Callable[["Kernel", str], None]


@dataclass
class Kernel:
    """A kernel as the gateway knows it."""

    id: int
    socket_dir: Path
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))  # the id Jupyter's own protocol uses
    owner: str | None = None  # id of the API key that started it (None: no keys configured)
    runtime: str = "runc"  # container runtime (runc, runsc), kept across restarts
    notebook: Notebook = field(default_factory=Notebook)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: KernelClient | None = None
    container_id: str = ""
    state: str = "starting"  # starting | idle | busy | dead
    last_death: str | None = None
    created: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    env: dict[str, str] = field(default_factory=dict)  # set in its container at every start (Jupyter API's env)
    connection_info: dict[str, Any] | None = field(default=None, repr=False)  # host view, holds the key: secret
    listeners: set[KernelListener] = field(default_factory=set, repr=False)
    replacing: asyncio.Task[None] | None = None  # a container replacement the next user must wait for

    def touch(self) -> None:
        self.last_activity = time.time()

    def notify(self, event: str) -> None:
        """Tell every listener what happened to the kernel's container (see ``KernelListener``)."""
        for listener in list(self.listeners):
            try:
                listener(self, event)
            except Exception:
                log.exception("kernel %d: a listener failed on %r", self.id, event)


@dataclass
class RunResult:
    """The outcome of running one cell."""

    cell: Cell
    status: str  # ok | error | timeout | died
    execution_count: int | None
    outputs: list[dict[str, Any]]
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
