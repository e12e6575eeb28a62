"""The ``agents`` sandbox backend: kernel containers on the nodes of node agents (``python -m gateway.agent``).

A ``SandboxBackend`` over ``gateway.agent.client``. The agents are found through ``JUPYCELL_AGENTS`` (a DNS name
such as Swarm's ``tasks.agent``, re-resolved every ``agents_refresh_interval``, or a list of host:port) and known
by the node name each reports. A kernel goes to the node with the most free capacity (``placement``); its handle
records the node, so a restarted gateway finds it again, and its connection info points at the agent's relay
ports with the Curve keys the gateway's kernel connections then use.

Node loss: an agent silent (no heartbeat, no answer) for ``agents_lost_after`` seconds, and not answering a ping,
has its node declared lost. Each kernel placed there is reported dead to the core (``watch_deaths``' callback)
and its ``exit_status`` gives the cause ``node <name> lost``; the core's death policy does the rest (dead, cells
kept, a fresh container placed on another node). Should the node come back, what was declared lost there is
removed. An agent restart is not a loss: its kernels keep running, its relays come back on the same ports. An agent
found at a new address under a known node name (a Swarm task replaced: new IP) is followed there, and each of its
kernels is reported moved to the core (``watch_moves``), which re-points their connections (``restore``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import zmq.asyncio

from gateway.adapters.agents.discovery import Target, parse_targets, resolve
from gateway.adapters.agents.node import AgentNode, NodeDisplaced
from gateway.adapters.agents.placement import holding, preference
from gateway.adapters.docker import SandboxSpec
from gateway.agent.client import AgentClient, AgentRefused, CurveKeys, Death, relay_connection_info
from gateway.agent.keys import load_keypair, load_public_key
from gateway.agent.protocol import CHANNELS
from gateway.errors import KernelStartFailed, SandboxUnavailable, TooManyKernels
from gateway.kernels.ports import (
    ConnectionInfo,
    ContainerExit,
    DeathCallback,
    MoveCallback,
    OwnContainer,
    SandboxHandle,
)
from gateway.settings import Settings

log = logging.getLogger(__name__)

#: Longest wait for an address to answer a capacity request while the agents are looked up (a dead address must
#: not hold up following the others).
_PROBE_TIMEOUT = 3.0
#: An agent silent this long (it sends a heartbeat every 2 s by default) has the agents looked up again at once, not
#: at the next periodic refresh: a restarted agent is followed to its new address within seconds.
_LOOK_AGAIN_AFTER = 5.0
#: How to make an allowed image available on the agents' nodes.
_LOAD_IT = (
    "no agent reports it. Load it into each node's engine (docker save | docker load: there is no registry; "
    "docs/swarm.md) and allow it in the agents' own JUPYCELL_ALLOWED_IMAGES too."
)


@dataclass(frozen=True)
class AgentHandle(SandboxHandle):
    """A kernel's sandbox on a node; its state records the node (in ``connection``, which the store keeps)."""

    node: str = ""

    def to_state(self) -> dict[str, Any]:
        state = super().to_state()
        return {**state, "connection": {**state["connection"], "node": self.node}}


class AgentsBackend:
    """Kernel containers on the agents' nodes (a ``SandboxBackend``). Use from one event loop."""

    def __init__(self, settings: Settings, keys: CurveKeys, targets: list[Target]) -> None:
        self.settings = settings
        self._keys = keys
        self._targets = targets
        self._profile = asdict(SandboxSpec.from_settings(settings))
        self._context = zmq.asyncio.Context()
        self._nodes: dict[str, AgentNode] = {}
        self._where: dict[int, AgentNode] = {}  # kernel id -> the node it was placed on
        self._found: dict[str, tuple[AgentNode, int | None]] = {}  # container id -> node, kernel id (list_own)
        self._listed: set[str] = set()  # the nodes the last list_own listed
        self._elsewhere: dict[int, tuple[str, str]] = {}  # kernel id -> (node, container id): restored while no
        # agent had said it is that node; placed there once one does
        self._on_death: DeathCallback = lambda kernel_id, container_id: None
        self._on_resumed: Callable[[], None] = lambda: None
        self._on_moved: MoveCallback = lambda kernel_id: None
        self._maintainer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentsBackend:
        if settings.gateway_curve_secret_file is None or settings.agent_curve_public_file is None:
            raise ValueError("backend=agents needs the gateway's and the agents' Curve key files")
        keys = CurveKeys(
            load_public_key(settings.agent_curve_public_file), load_keypair(settings.gateway_curve_secret_file)
        )
        return cls(settings, keys, parse_targets(settings.agents))

    # --- nodes ----------------------------------------------------------------------------------------------

    def _ready(self) -> list[AgentNode]:
        return [node for node in self._nodes.values() if not node.lost]

    async def _refresh(self) -> None:
        """Resolve the agents' addresses again; follow new ones; update every node's capacity report."""
        addresses = await resolve(self._targets)
        known = {node.address: node for node in self._nodes.values()}
        answered: set[str] = set()

        async def probe(address: tuple[str, int]) -> None:
            node = known.get(address)
            if node is not None:
                try:
                    await node.report(timeout=_PROBE_TIMEOUT)
                    answered.add(node.name)
                    return
                except NodeDisplaced:  # a replaced task of another node has the address now: follow that one
                    pass
                except (SandboxUnavailable, AgentRefused):
                    return
            client = AgentClient(*address, self._keys, timeout=_PROBE_TIMEOUT, context=self._context)
            try:
                capacity = await client.capacity()
                name = str(capacity["node"])
            except (SandboxUnavailable, AgentRefused, KeyError, TypeError):
                client.close()
                return
            client.timeout = self.settings.agents_request_timeout
            self._add(name, client, capacity, answered)

        for failed in await asyncio.gather(*(probe(a) for a in addresses | set(known)), return_exceptions=True):
            if isinstance(failed, Exception):  # e.g. a client closed under its probe by a move: next refresh
                log.warning("probing an agent address failed: %r", failed)
        for name in answered:
            node = self._nodes[name]
            if node.lost:
                self._back(node)
            if node.left_behind:
                self._spawn(self._tidy(node))

    def _add(self, name: str, client: AgentClient, capacity: dict[str, Any], answered: set[str]) -> None:
        node = self._nodes.get(name)
        if node is None:
            log.info("agent of node %s found at %s:%d", name, client.host, client.port)
            self._nodes[name] = AgentNode(
                name, client, capacity, self._keys,
                context=self._context, lost_after=self.settings.agents_lost_after,
                on_death=self._death, on_resync=self._resync,
            )  # fmt: skip
            for kernel_id, (where, container_id) in list(self._elsewhere.items()):
                if where == name:
                    del self._elsewhere[kernel_id]
                    self._nodes[name].placed[kernel_id], self._where[kernel_id] = container_id, self._nodes[name]
        elif name in answered:  # two agents claim one node name: keep following the first
            log.error("agents at %s:%d and %s:%d both say they are node %s", *node.address, client.host, client.port,
                      name)  # fmt: skip
            client.close()
            return
        else:
            node.move(client, capacity)
            for kernel_id, container_id in list(node.placed.items()):  # the core connects them again there
                if container_id and kernel_id not in node.left_behind:
                    self._on_moved(kernel_id)
        answered.add(name)

    async def _maintain(self) -> None:
        """Follow the agents: refresh every ``agents_refresh_interval``, and at once when one falls silent; look for
        lost ones every second."""
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + self.settings.agents_refresh_interval
        while True:
            await asyncio.sleep(min(1.0, self.settings.agents_lost_after / 4))
            try:
                silent = any(node.silent_for > _LOOK_AGAIN_AFTER for node in self._ready())
                if silent or loop.time() >= next_refresh:
                    next_refresh = loop.time() + self.settings.agents_refresh_interval
                    await self._refresh()
                await asyncio.gather(*(self._check(node) for node in self._ready()))
            except Exception:  # keep following the agents whatever one of them does
                log.exception("following the agents failed")

    async def _check(self, node: AgentNode) -> None:
        """A node silent past the grace and not answering a ping is lost."""
        if node.silent_for < self.settings.agents_lost_after:
            return
        try:  # a capacity report names the node: another node's agent answering at the address is no answer
            await node.report()
        except (SandboxUnavailable, AgentRefused):
            self._lose(node)

    def _lose(self, node: AgentNode) -> None:
        if node.lost:
            return
        node.lost = True
        log.error(
            "node %s lost: its agent at %s:%d has not answered for %.0f s; %d kernels there are dead",
            node.name, *node.address, node.silent_for, len(node.placed),
        )  # fmt: skip
        for kernel_id, container_id in list(node.placed.items()):
            node.left_behind.add(kernel_id)
            if container_id:
                self._on_death(kernel_id, container_id)

    def _back(self, node: AgentNode) -> None:
        log.warning("node %s answers again; what was declared lost there is removed", node.name)
        node.lost = False

    async def _tidy(self, node: AgentNode) -> None:
        """Remove the kernels left behind on a node that answers (lost meanwhile, or removal timed out)."""
        for kernel_id in list(node.left_behind):
            if kernel_id in node.placed:  # placed here again since
                node.left_behind.discard(kernel_id)
                continue
            with contextlib.suppress(SandboxUnavailable, AgentRefused):
                await node.call(lambda c, k=kernel_id: c.remove(k))  # type: ignore[misc]
                node.left_behind.discard(kernel_id)

    def _death(self, node: AgentNode, death: Death) -> None:
        node.heard()
        self._on_death(death.kernel_id, death.container_id)

    def _resync(self, node: AgentNode) -> None:
        """Events from the node may have been missed (new agent boot, gap): the core looks at every kernel."""
        node.heard()
        self._on_resumed()

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _node_of(self, kernel_id: int) -> AgentNode:
        node = self._where.get(kernel_id)
        if node is None:
            raise SandboxUnavailable(f"kernel {kernel_id} is on no known node")
        return node

    def node_serving(self, kernel_id: int) -> AgentNode:
        """The ready node the sandbox ``kernel_id`` runs on (packages on demand ask its agent); SandboxUnavailable if
        it is on no known node, or its node is lost."""
        node = self._node_of(kernel_id)
        if node.lost:
            raise SandboxUnavailable(f"node {node.name} of kernel {kernel_id} is lost")
        return node

    # --- the port -------------------------------------------------------------------------------------------

    @property
    def limits(self) -> dict[str, Any]:
        return self._profile

    async def check_ready(self, runtimes: tuple[str, ...], images: tuple[str, ...] = ()) -> None:
        await self._refresh()
        ready = self._ready()
        if not ready:
            raise SandboxUnavailable(
                f"no agent answers at {self.settings.agents!r} (JUPYCELL_AGENTS): are the agents up, and do they "
                "allow this gateway's Curve key?"
            )
        wanted = set((self.settings.runtime, *runtimes))
        for node in ready:
            missing = wanted - set(node.capacity.get("runtimes") or ())
            if missing:
                raise SandboxUnavailable(
                    f"the agent of node {node.name} does not allow runtime(s) {', '.join(sorted(missing))}"
                )
        self._check_images(images, ready)
        if self._maintainer is None:
            self._maintainer = asyncio.create_task(self._maintain())

    def _check_images(self, images: tuple[str, ...], ready: list[AgentNode]) -> None:
        """Like the local backend, refuse an allowed image no node has (allowed by its agent and in its engine);
        warn about one only some nodes have (its kernels go to those)."""
        for image in images:
            if image == self.settings.sandbox_image:  # every agent checks its own at its start
                continue
            lacking = sorted(node.name for node in ready if image not in node.load().images)
            if len(lacking) == len(ready):
                raise SandboxUnavailable(f"Sandbox image {image!r} is on no node: {_LOAD_IT}")
            if lacking:
                log.warning("image %r is not on node(s) %s: its kernels go to the others", image, ", ".join(lacking))

    async def _holding(self, image: str | None, ready: dict[str, AgentNode]) -> dict[str, AgentNode]:
        """The ready nodes that have ``image`` (after fresh capacity reports if none had it);
        KernelStartFailed, as the local backend for an image its engine lacks, if none has."""
        for fresh in (False, True):
            if fresh:
                await asyncio.gather(*(self._report(node) for node in ready.values()))
            names = {load.name for load in holding([node.load() for node in ready.values()], image)}
            if names:
                return {name: node for name, node in ready.items() if name in names}
        raise KernelStartFailed(f"Sandbox image {image!r} is on no ready node: {_LOAD_IT}")

    async def ping(self) -> None:
        async def answers(node: AgentNode) -> bool:
            try:
                await node.call(lambda c: c.ping())
            except (SandboxUnavailable, AgentRefused):
                return False
            return True

        if not any(await asyncio.gather(*(answers(node) for node in self._ready()))):
            raise SandboxUnavailable("no agent answers")

    async def start(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str], *, pooled: bool = False,
        image: str | None = None, node: str | None = None,
    ) -> SandboxHandle:  # fmt: skip
        """Place the kernel on the node with the most free capacity (the next one if that node is full by now), or
        on ``node`` (the warm pool's per-node filling); with an ``image`` of its own, only on a node that has it."""
        key = secrets.token_hex(32)
        ready = {n.name: n for n in self._ready() if node is None or n.name == node}
        if not ready:
            if node is not None:
                raise SandboxUnavailable(f"node {node} is not ready to start a kernel (lost or unreachable)")
            raise SandboxUnavailable("no agent is ready to start a kernel (every node is lost or unreachable)")
        ready = await self._holding(image, ready)
        for fresh in (False, True):  # every node full: ask for fresh capacity reports once before refusing
            if fresh:
                await asyncio.gather(*(self._report(node) for node in ready.values()))
            handle = await self._place(kernel_id, jupyter_id, key, ready, runtime, env, pooled, image)
            if handle is not None:
                return handle
        loads = ", ".join(f"{n.name} {n.load().kernels}" for n in ready.values())
        raise TooManyKernels(
            f"every node runs its maximum of kernels (max_kernels_per_node={self.settings.max_kernels_per_node}; "
            f"kernels per node: {loads})"
        )

    def nodes(self) -> list[str]:
        """The ready nodes with a free slot, the one placement prefers first."""
        return self._order(self._ready())

    def _order(self, nodes: Iterable[AgentNode], image: str | None = None) -> list[str]:
        return preference(
            [node.load() for node in nodes],
            per_node=self.settings.max_kernels_per_node,
            kernel_mem_mb=self.settings.mem_limit_mb,
            image=image,
        )

    def node_of(self, state: dict[str, Any]) -> str | None:
        connection = state.get("connection")
        node = connection.get("node") if isinstance(connection, dict) else None
        return node if isinstance(node, str) and node else None

    async def _report(self, node: AgentNode) -> None:
        with contextlib.suppress(SandboxUnavailable, AgentRefused):
            await node.report()

    async def _place(
        self, kernel_id: int, jupyter_id: str, key: str, ready: dict[str, AgentNode], runtime: str,
        env: dict[str, str], pooled: bool, image: str | None = None,
    ) -> AgentHandle | None:  # fmt: skip
        """Start the kernel on the first node of the placement order that takes it; None if none does."""
        order = self._order(ready.values(), image)
        for name in order:
            node = ready[name]
            node.placed[kernel_id], self._where[kernel_id] = "", node
            try:
                started = await node.call(
                    lambda c: c.start(
                        kernel_id, key, runtime=None if pooled else runtime, env=None if pooled else env,
                        pool=pooled, timeout=self.settings.kernel_start_timeout, jupyter_id=jupyter_id,
                        image=image,
                    )
                )  # fmt: skip
            except AgentRefused as error:
                node.placed.pop(kernel_id, None)
                self._where.pop(kernel_id, None)
                if error.type == "capacity":
                    continue
                raise KernelStartFailed(f"node {name} refused the kernel: {error}") from None
            except SandboxUnavailable as error:
                raise KernelStartFailed(f"node {name}: {error}") from None
            node.placed[kernel_id] = started.container_id
            node.counted(+1)
            return self._handle(kernel_id, node, started.container_id, started.ports, key)
        return None

    def _handle(
        self, kernel_id: int, node: AgentNode | None, container_id: str, ports: dict[str, int], key: str,
        ip: str = "", name: str = "",
    ) -> AgentHandle:  # fmt: skip
        """The handle, connection info to the node's relay with the Curve keys (to ``ip`` if the node is unknown:
        such a kernel is not answering, and start-up recovery marks it dead)."""
        name = node.name if node is not None else name
        info = relay_connection_info(node.address[0] if node is not None else ip or "127.0.0.1", ports, key)
        info.update(
            curve_server_key=self._keys.server_public.decode(),
            curve_client_public=self._keys.client.public.decode(),
            curve_client_secret=self._keys.client.secret.decode(),
        )
        return AgentHandle(kernel_id, container_id, f"{name}/{kernel_id}", cast(ConnectionInfo, info), name)

    async def seal(self, handle: SandboxHandle) -> None:
        node = self._node_of(handle.kernel_id)
        await node.call(lambda c: c.seal(handle.kernel_id))

    def restore(self, kernel_id: int, state: dict[str, Any], key: str) -> SandboxHandle:
        connection = state.get("connection") or {}
        name = str(connection.get("node", ""))
        ports = {channel: int(connection.get(f"{channel}_port", 0)) for channel in CHANNELS}
        container_id = str(state.get("container_id", ""))
        node = self._nodes.get(name)
        if node is not None:
            node.placed[kernel_id], self._where[kernel_id] = container_id, node
        elif name:
            self._elsewhere[kernel_id] = (name, container_id)
        return self._handle(kernel_id, node, container_id, ports, key, str(connection.get("ip", "")), name)

    async def signal(self, kernel_id: int, signal: str) -> None:
        node = self._where.get(kernel_id)
        if node is None or node.lost:
            return
        await node.call(lambda c: c.signal(kernel_id, signal))

    async def exit_status(self, kernel_id: int) -> ContainerExit | None:
        """As the port says; a node that does not answer gives ``node <name> lost`` once it is declared lost (its
        verdict is waited for), SandboxUnavailable if it answers again without a status."""
        node = self._where.get(kernel_id)
        if node is None and kernel_id in self._elsewhere:  # on a node not found yet: found in time, or lost
            name, _ = self._elsewhere[kernel_id]
            node = await self._found_in_time(name)
            if node is None:
                return ContainerExit(exit_code=None, oom_killed=False, cause=f"node {name} lost")
        if node is None:
            return ContainerExit(exit_code=None, oom_killed=False)
        if not node.lost:
            try:
                return _exit_of(await node.call(lambda c: c.status(kernel_id)))
            except AgentRefused:
                return ContainerExit(exit_code=None, oom_killed=False)
            except SandboxUnavailable:
                if not await self._lost_meanwhile(node):
                    raise
        return ContainerExit(exit_code=None, oom_killed=False, cause=f"node {node.name} lost")

    async def _found_in_time(self, name: str) -> AgentNode | None:
        """The node ``name`` once an agent says it is that node, waiting at most the grace of a silent node."""
        began = time.monotonic()
        while (node := self._nodes.get(name)) is None:
            if time.monotonic() - began > self.settings.agents_lost_after + _PROBE_TIMEOUT:
                return None
            await asyncio.sleep(0.25)
        return node

    async def _lost_meanwhile(self, node: AgentNode) -> bool:
        """Whether a node that did not answer is declared lost before it answers again: waits for the verdict
        (at most the grace and one more check)."""
        began = time.monotonic()
        while not node.lost:
            waited = time.monotonic() - began
            if node.silent_for < waited or waited > self.settings.agents_lost_after + node.client.timeout:
                return False  # it answered since, or no verdict in time
            await asyncio.sleep(0.25)
        return True

    async def logs(self, kernel_id: int, tail: int = 40) -> str:
        node = self._where.get(kernel_id)
        if node is None or node.lost:
            return ""
        try:
            return await node.call(lambda c: c.logs(kernel_id, tail))
        except (SandboxUnavailable, AgentRefused):
            return ""

    async def remove(self, kernel_id: int) -> None:
        """Remove the kernel's container, relay and files from its node. Idempotent; never fails: a node that does
        not answer gets the removal once it answers again."""
        node = self._where.pop(kernel_id, None)
        self._elsewhere.pop(kernel_id, None)
        if node is None:  # on no node this gateway knows of (e.g. dead since before a restart): wherever it is
            await asyncio.gather(*(self._remove_on(other, kernel_id, placed=False) for other in self._ready()))
            return
        node.placed.pop(kernel_id, None)
        await self._remove_on(node, kernel_id)

    async def _remove_on(self, node: AgentNode, kernel_id: int, *, placed: bool = True) -> None:
        if node.lost:
            node.left_behind.add(kernel_id)
            return
        try:
            await node.call(lambda c: c.remove(kernel_id))
            if placed:
                node.counted(-1)
        except AgentRefused:
            pass  # e.g. not found: removed already
        except SandboxUnavailable as error:
            log.warning("node %s: kernel %d is removed once the agent answers (%s)", node.name, kernel_id, error)
            node.left_behind.add(kernel_id)

    async def remove_container(self, name: str) -> None:
        """Remove a container ``list_own`` found (by its id)."""
        node, kernel_id = self._found.pop(name, (None, None))
        if node is None:
            return
        if kernel_id is not None and self._where.get(kernel_id) is node:
            del self._where[kernel_id]
            node.placed.pop(kernel_id, None)
        try:
            await node.call(lambda c: c.remove_container(name))
        except (SandboxUnavailable, AgentRefused) as error:
            log.warning("node %s: container %s not removed: %s", node.name, name[:12], error)

    async def list_own(self) -> list[OwnContainer]:
        """Every kernel container on the ready nodes (a node that does not answer is left out, with a warning, and
        from ``listed``)."""
        found: list[OwnContainer] = []
        self._listed = set()
        for node in self._ready():
            try:
                entries = await node.call(lambda c: c.list())
                self._listed.add(node.name)
                for entry in entries:
                    kernel_id = entry.get("kernel_id")
                    kernel_id = kernel_id if isinstance(kernel_id, int) and not isinstance(kernel_id, bool) else None
                    container_id = str(entry["container_id"])
                    ended = None
                    if entry.get("running") is not True:
                        code = entry.get("exit_code")
                        ended = ContainerExit(code if isinstance(code, int) else None, entry.get("oom_killed") is True)
                    found.append(OwnContainer(container_id, container_id, kernel_id, ended))
                    self._found[container_id] = (node, kernel_id)
            except (SandboxUnavailable, AgentRefused, KeyError, TypeError, AttributeError) as error:
                log.warning("could not list the kernels of node %s: %s", node.name, error)
        return found

    def listed(self) -> set[str]:
        return set(self._listed)

    async def remove_leftovers(self, keep: set[int]) -> None:
        """Nothing to do: an agent removes socket directories without a container when it starts."""

    async def remove_all(self) -> int:
        """Remove every kernel this gateway placed or found (other gateways' kernels on the same nodes stay)."""
        kernel_ids = list(self._where)
        await asyncio.gather(*(self.remove(kernel_id) for kernel_id in kernel_ids))
        return len(kernel_ids)

    def watch_deaths(
        self, loop: asyncio.AbstractEventLoop, on_death: DeathCallback, on_resumed: Callable[[], None]
    ) -> None:
        """Deaths from every agent's events, and node losses as deaths of each kernel there."""
        self._on_death, self._on_resumed = on_death, on_resumed
        if self._maintainer is None:
            self._maintainer = loop.create_task(self._maintain())

    def watch_moves(self, on_moved: MoveCallback) -> None:
        """A node's agent found at a new address (a new Swarm task): ``on_moved`` for each kernel placed there,
        whose ``restore`` handle then points at the new address (its relays are on the same ports)."""
        self._on_moved = on_moved

    def close(self) -> None:
        for task in (self._maintainer, *self._tasks):
            if task is not None:
                task.cancel()
        for node in self._nodes.values():
            node.close()
        self._context.destroy(linger=0)


def _exit_of(status: dict[str, Any]) -> ContainerExit | None:
    """An agent's ``status`` reply as the port's answer: None while the container runs."""
    if status.get("running") is True:
        return None
    code = status.get("exit_code")
    return ContainerExit(
        exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        oom_killed=status.get("oom_killed") is True,
    )
