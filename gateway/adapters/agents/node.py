"""One node as the agents backend follows it: its agent's control client and events, its last capacity report,
the kernels this gateway placed on it, and whether it is lost.

Every control request goes through ``call``: bounded in time by the client, a reply of the wrong shape becomes
``SandboxUnavailable`` (contained, never a crash), and an answer counts as a sign of life.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import zmq.asyncio

from gateway.adapters.agents.placement import NodeLoad
from gateway.agent.client import AgentClient, AgentEvents, CurveKeys, Death
from gateway.errors import SandboxUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class NodeDisplaced(SandboxUnavailable):
    """Another node's agent answers at this node's address now (Swarm gave a replaced task the IP)."""


class AgentNode:
    """A node named by its agent (``capacity()["node"]``), at the address it was last found at."""

    def __init__(
        self,
        name: str,
        client: AgentClient,
        capacity: dict[str, Any],
        keys: CurveKeys,
        *,
        context: zmq.asyncio.Context,
        lost_after: float,
        on_death: Callable[[AgentNode, Death], None],
        on_resync: Callable[[AgentNode], None],
    ) -> None:
        self.name = name
        self.placed: dict[int, str] = {}  # kernel id -> container id ("" while it starts)
        self.left_behind: set[int] = set()  # kernels to remove here once the node answers again
        self.lost = False
        self._keys, self._context, self._lost_after = keys, context, lost_after
        self._on_death, self._on_resync = on_death, on_resync
        self._heard = time.monotonic()
        self.client = client
        self.capacity = capacity
        self.events = self._follow(client.host, capacity)

    def _follow(self, host: str, capacity: dict[str, Any]) -> AgentEvents:
        port = capacity.get("events_port")
        events_port = port if isinstance(port, int) and 0 < port < 65536 else self.client.port + 1
        return AgentEvents(
            host, events_port, self._keys, node=self.name,
            on_death=lambda death: self._on_death(self, death),
            on_resync=lambda: self._on_resync(self),
            silent_after=self._lost_after,
            context=self._context,
        )  # fmt: skip

    @property
    def address(self) -> tuple[str, int]:
        return self.client.host, self.client.port

    def move(self, client: AgentClient, capacity: dict[str, Any]) -> None:
        """The node's agent answers at another address now (restarted as a new task): follow it there."""
        log.warning("agent of node %s moved from %s:%d to %s:%d", self.name, *self.address, client.host, client.port)
        self.client.close()
        self.events.close()
        self.client, self.capacity = client, capacity
        self.events = self._follow(client.host, capacity)
        self.heard()

    def close(self) -> None:
        self.client.close()
        self.events.close()

    # --- signs of life --------------------------------------------------------------------------------------

    def heard(self) -> None:
        self._heard = time.monotonic()

    @property
    def silent_for(self) -> float:
        """Seconds since the agent last answered or sent an event."""
        last = max(self._heard, self.events.last_seen or 0.0)
        return time.monotonic() - last

    async def call(self, request: Callable[[AgentClient], Awaitable[T]]) -> T:
        """One control request; a reply of the wrong shape raises SandboxUnavailable."""
        try:
            result = await request(self.client)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise SandboxUnavailable(f"agent of node {self.name} sent a malformed reply ({error!r})") from None
        self.heard()
        return result

    async def report(self, timeout: float | None = None) -> dict[str, Any]:
        """A fresh capacity report, which becomes ``capacity``. Raises NodeDisplaced if the agent answering at the
        node's address is another node's: addresses are reused, so an answer there is not proof of life."""
        try:
            capacity = await self.client.capacity(timeout)
            name = capacity["node"]
        except (KeyError, TypeError) as error:
            raise SandboxUnavailable(f"agent of node {self.name} sent a malformed reply ({error!r})") from None
        if name != self.name:
            raise NodeDisplaced(f"the agent at {self.client.host}:{self.client.port} is node {name!r}'s now")
        self.heard()
        self.capacity = capacity
        return capacity

    # --- load -----------------------------------------------------------------------------------------------

    def counted(self, change: int) -> None:
        """This gateway started (+1) or removed (-1) a kernel here: its count until the next capacity report."""
        self.capacity["kernels"] = max(0, _count(self.capacity.get("kernels")) + change)

    def load(self) -> NodeLoad:
        """Its load for placement: the agent's last report, or what this gateway placed there if that is more."""
        reported = _count(self.capacity.get("kernels")) + _count(self.capacity.get("starting"))
        return NodeLoad(
            self.name,
            max(reported, len(self.placed)),
            _count(self.capacity.get("max_kernels"), default=2**31),
            _count(self.capacity.get("mem_mb")),
            _images(self.capacity.get("images")),
        )


def _images(value: Any) -> frozenset[str]:
    """The images of a capacity report (none if it has no list of names)."""
    return frozenset(i for i in value if isinstance(i, str)) if isinstance(value, list) else frozenset()


def _count(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
