"""In-memory adapters for the core's ports: a sandbox backend, a kernel connector and a store, no Docker, no ZMQ.

``FakeSandbox`` keeps "containers" in a dict and lets a test kill one (``die``) as the engine would report it.
``FakeConnector`` makes connections that run code with ``exec`` in a namespace per container (so memory is lost
when the container is replaced), with a few directives for the behaviours only a real kernel shows:

- ``# hang``: run until interrupted (an interrupt request ends it with KeyboardInterrupt);
- ``# hang-hard``: ignore interrupt requests; only the engine's SIGINT (``signal``) ends it;
- ``# forever``: ignore everything (the kernel must be replaced).

``FakeStore`` records what is written and can be told to fail the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import KernelGone, KernelStartFailed, KernelUnresponsive, SandboxUnavailable, StoreUnavailable
from gateway.kernels.kernel import Kernel, KernelState
from gateway.kernels.ports import (
    Adopted,
    ConnectionInfo,
    ContainerExit,
    DeathCallback,
    InterruptedRun,
    KernelLocation,
    KernelRecord,
    OwnContainer,
    ReplicaPeer,
    SandboxHandle,
)
from gateway.kernels.service import KernelService
from gateway.notebook import Cell
from gateway.notebook.outputs import Output, OutputCollector
from gateway.settings import Settings


@dataclass
class FakeContainer:
    kernel_id: int
    container_id: str
    name: str
    runtime: str
    env: dict[str, str]
    pooled: bool
    jupyter_id: str
    image: str | None = None
    namespace: dict[str, Any] = field(default_factory=dict)
    exit: ContainerExit | None = None
    sealed: bool = False
    signals: list[str] = field(default_factory=list)
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    sigint: asyncio.Event = field(default_factory=asyncio.Event)
    lost_with: str | None = None  # its node is silent: nothing reaches it; the cause the engine gives meanwhile


class FakeSandbox:
    """A ``SandboxBackend`` in memory."""

    def __init__(self, *, fail_starts: int = 0, start_delay: float = 0.0) -> None:
        self.containers: dict[str, FakeContainer] = {}  # by container id
        self.removed: list[int] = []
        self.fail_starts = fail_starts
        self.start_delay = start_delay
        self.started = 0
        self.removal_gate: asyncio.Event | None = None  # set: removals wait until it is set
        self._on_death: DeathCallback | None = None
        self._counter = 0

    @property
    def limits(self) -> dict[str, Any]:
        return {"image": "fake", "runtime": "runc", "mem_limit_mb": 64}

    async def check_ready(self, runtimes: tuple[str, ...], images: tuple[str, ...] = ()) -> None:
        return None

    async def ping(self) -> None:
        return None

    def by_kernel(self, kernel_id: int) -> FakeContainer | None:
        return next((c for c in self.containers.values() if c.kernel_id == kernel_id), None)

    async def start(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str], *, pooled: bool = False,
        image: str | None = None, node: str | None = None,
    ) -> SandboxHandle:  # fmt: skip
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        if self.fail_starts:
            self.fail_starts -= 1
            raise KernelStartFailed("the fake engine refused to start it")
        self._counter += 1
        self.started += 1
        container_id = f"c{self._counter:06d}"
        name = f"fake-{kernel_id}"
        self.containers[container_id] = FakeContainer(
            kernel_id, container_id, name, runtime, env, pooled, jupyter_id, image
        )
        info: ConnectionInfo = {"transport": "fake", "ip": container_id, "key": f"key-{self._counter}"}
        return SandboxHandle(kernel_id, container_id, name, info)

    async def seal(self, handle: SandboxHandle) -> None:
        self.containers[handle.container_id].sealed = True

    def restore(self, kernel_id: int, state: dict[str, Any], key: str) -> SandboxHandle:
        info: ConnectionInfo = {**state["connection"], "key": key}  # type: ignore[typeddict-item]
        return SandboxHandle(kernel_id, state["container_id"], state["name"], info)

    async def signal(self, kernel_id: int, signal: str) -> None:
        container = self.by_kernel(kernel_id)
        if container is not None and container.lost_with:
            raise SandboxUnavailable(f"the node of kernel {kernel_id} does not answer")
        if container is not None:
            container.signals.append(signal)
            if signal == "SIGINT":
                container.sigint.set()

    async def exit_status(self, kernel_id: int) -> ContainerExit | None:
        container = self.by_kernel(kernel_id)
        if container is not None and container.lost_with:
            return ContainerExit(None, False, cause=container.lost_with)
        return ContainerExit(None, False) if container is None else container.exit

    async def logs(self, kernel_id: int, tail: int = 40) -> str:
        return "fake log"

    async def remove(self, kernel_id: int) -> None:
        if self.removal_gate is not None:
            await self.removal_gate.wait()
        for container in [c for c in self.containers.values() if c.kernel_id == kernel_id]:
            del self.containers[container.container_id]
        self.removed.append(kernel_id)

    async def remove_container(self, name: str) -> None:
        for container in [c for c in self.containers.values() if name in (c.name, c.container_id)]:
            del self.containers[container.container_id]

    async def list_own(self) -> list[OwnContainer]:
        return [OwnContainer(c.name, c.container_id, c.kernel_id, c.exit) for c in self.containers.values()]

    async def remove_leftovers(self, keep: set[int]) -> None:
        return None

    async def remove_all(self) -> int:
        count = len(self.containers)
        self.containers.clear()
        return count

    def watch_deaths(
        self, loop: asyncio.AbstractEventLoop, on_death: DeathCallback, on_resumed: Callable[[], None]
    ) -> None:
        self._on_death = on_death

    def close(self) -> None:
        return None

    # --- what tests do to it ------------------------------------------------------------------------------

    def die(self, kernel_id: int, *, oom: bool = False, exit_code: int = 137, event: bool = True) -> FakeContainer:
        """The kernel's container dies (``event``: and the engine reports it)."""
        container = self.by_kernel(kernel_id)
        assert container is not None, f"kernel {kernel_id} has no container"
        container.exit = ContainerExit(exit_code, oom)
        if event and self._on_death is not None:
            self._on_death(kernel_id, container.container_id)
        return container


@dataclass
class FakeExecution:
    status: str
    execution_count: int | None
    outputs: list[Output]
    truncated: bool = False


class FakeConnection:
    """A ``KernelConnection`` that runs code with ``exec`` in its container's namespace."""

    _open: dict[str, set[FakeConnection]] = {}

    def __init__(self, sandbox: FakeSandbox, info: ConnectionInfo, *, ready: bool = True) -> None:
        self.sandbox = sandbox
        self.container_id = str(info["ip"])
        self.died: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ready = ready
        self.closed = False
        self.count = 0
        FakeConnection._open.setdefault(self.container_id, set()).add(self)

    @classmethod
    def open_to(cls, container_id: str) -> list[FakeConnection]:
        return list(cls._open.get(container_id, ()))

    @property
    def container(self) -> FakeContainer | None:
        return self.sandbox.containers.get(self.container_id)

    async def wait_ready(self, timeout: float) -> None:
        container = self.container
        if not self.ready or container is None or container.exit is not None or container.lost_with:
            raise KernelUnresponsive(f"kernel did not answer within {timeout:g} s")

    async def execute(
        self,
        code: str,
        timeout: float,
        collector: OutputCollector,
        interrupt_grace: float,
        escalate: Callable[[], Any] | None = None,
    ) -> FakeExecution:
        container = self.container
        if container is None or self.died.done() or container.exit is not None:
            raise KernelGone(self.died.result() if self.died.done() else "container gone")
        container.interrupted.clear()
        container.sigint.clear()
        self.count += 1
        count = container.namespace.setdefault("__count__", 0) + 1
        container.namespace["__count__"] = count
        if "# hang" in code or "# forever" in code:
            return await self._hang(code, container, timeout, collector, interrupt_grace, escalate, count)
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout):
                exec(compile(code, "<cell>", "exec"), container.namespace)  # noqa: S102 (test double)
            status = "ok"
        except Exception as error:
            status = "error"
            if stdout.getvalue():
                collector.add({"output_type": "stream", "name": "stdout", "text": stdout.getvalue()})
            collector.add(
                {"output_type": "error", "ename": type(error).__name__, "evalue": str(error),
                 "traceback": traceback.format_exception_only(error)}
            )  # fmt: skip
            return FakeExecution(status, count, collector.outputs(), collector.truncated)
        if stdout.getvalue():
            collector.add({"output_type": "stream", "name": "stdout", "text": stdout.getvalue()})
        await asyncio.sleep(0)
        return FakeExecution(status, count, collector.outputs(), collector.truncated)

    async def _hang(
        self, code: str, container: FakeContainer, timeout: float, collector: OutputCollector,
        grace: float, escalate: Callable[[], Any] | None, count: int,
    ) -> FakeExecution:  # fmt: skip
        """Wait for an interrupt the code honours (or the deadline's escalation), or death."""

        async def stopped() -> None:
            waits = [asyncio.ensure_future(asyncio.shield(self.died))]
            if "# hang-hard" in code:
                waits.append(asyncio.ensure_future(container.sigint.wait()))
            elif "# hang" in code and "# forever" not in code:
                waits.append(asyncio.ensure_future(container.interrupted.wait()))
                waits.append(asyncio.ensure_future(container.sigint.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            if self.died.done():
                raise KernelGone(self.died.result())

        try:
            await asyncio.wait_for(stopped(), timeout)
            interrupted = False
        except TimeoutError:
            interrupted = True
            await self.interrupt()
            try:
                await asyncio.wait_for(stopped(), 0.05)
            except TimeoutError:
                if escalate is not None:
                    await escalate()
                try:
                    await asyncio.wait_for(stopped(), grace)
                except TimeoutError:
                    raise KernelUnresponsive(f"still busy {grace:g} s after an interrupt") from None
        collector.add({"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
        return FakeExecution("timeout" if interrupted else "error", count, collector.outputs(), collector.truncated)

    async def evaluate(self, expression: str, timeout: float) -> str:
        container = self.container
        if container is None or self.died.done():
            raise KernelGone("container gone")
        return repr(eval(expression, dict(container.namespace)))  # noqa: S307 (test double)

    async def interrupt(self, acknowledged_within: float = 0.0) -> bool:
        container = self.container
        if container is not None and not container.lost_with:
            container.interrupted.set()
            return acknowledged_within > 0
        return False

    def mark_dead(self, cause: str) -> None:
        if not self.died.done():
            self.died.set_result(cause)

    def close(self) -> None:
        self.closed = True
        FakeConnection._open.get(self.container_id, set()).discard(self)


class FakeConnector:
    """A ``KernelConnector`` making ``FakeConnection``s; ``unready`` makes the next N connections never ready."""

    def __init__(self, sandbox: FakeSandbox) -> None:
        self.sandbox = sandbox
        self.unready = 0
        self.connections: list[FakeConnection] = []

    def connect(self, connection_info: ConnectionInfo) -> FakeConnection:
        ready = self.unready <= 0
        self.unready -= 1
        connection = FakeConnection(self.sandbox, connection_info, ready=ready)
        self.connections.append(connection)
        return connection


class FakeStore:
    """A ``KernelStore`` in memory: kernel records, cells by kernel, runs; ``fail_next`` makes the next write fail."""

    def __init__(self) -> None:
        self.kernels: dict[int, KernelRecord] = {}
        self.cells: dict[int, dict[int, Cell]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.interrupted: list[InterruptedRun] = []
        self.fail_next = False

    def _write(self) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailable("the fake database refused the write")

    async def load_kernels(self, instance: str) -> list[KernelRecord]:
        records = [r for r in self.kernels.values() if r.instance == instance]
        for record in records:
            record.cells = [self.cells[record.id][n] for n in sorted(self.cells.get(record.id, {}))]
        return records

    async def add_kernel(self, record: KernelRecord) -> None:
        self._write()
        self.kernels[record.id] = record
        self.cells[record.id] = {}

    async def update_kernel(self, kernel_id: int, **values: Any) -> None:
        self._write()
        record = self.kernels.get(kernel_id)
        if record is not None:
            for name, value in values.items():
                if name == "container_id":
                    record.sandbox = {**record.sandbox, "container_id": value}
                else:
                    setattr(record, name, value)

    async def delete_kernel(self, kernel_id: int) -> None:
        self._write()
        self.kernels.pop(kernel_id, None)
        self.cells.pop(kernel_id, None)

    async def add_cell(self, kernel_id: int, cell: Cell, *, stale: Any = None, version: int | None = None) -> None:
        self._write()
        self.cells.setdefault(kernel_id, {})[cell.number] = cell

    async def save_cell(self, kernel_id: int, cell: Cell, *, stale: Any = None, version: int | None = None) -> None:
        self._write()
        self.cells.setdefault(kernel_id, {})[cell.number] = cell

    async def delete_cell(self, kernel_id: int, number: int, *, stale: Any = None, version: int | None = None) -> None:
        self._write()
        self.cells.get(kernel_id, {}).pop(number, None)

    async def kernel_replaced(self, kernel_id: int, notebook: list[Cell], **values: Any) -> None:
        self._write()
        record = self.kernels.get(kernel_id)
        if record is not None:
            record.sandbox, record.hmac_key, record.state = values["sandbox"], values["hmac_key"], values["state"]

    def begin_run(self, run_id: str, kernel_id: int, cell: Cell, started_at: float) -> None:
        self.runs[run_id] = {"kernel_id": kernel_id, "cell": cell.number, "state": "running"}

    def save_partial_outputs(self, run_id: str, outputs: list[Output], truncated: bool) -> None:
        self.runs.setdefault(run_id, {})["outputs"] = outputs

    async def finish_run(self, run_id: str, kernel_id: int, cell: Cell, **values: Any) -> None:
        self._write()
        self.runs[run_id] = {"kernel_id": kernel_id, "cell": cell.number, "state": cell.status, **values}

    def abandon_run(self, run_id: str, detail: str) -> None:
        self.runs.setdefault(run_id, {})["state"] = "abandoned"

    async def interrupt_open_runs(self, instance: str, detail: str) -> list[InterruptedRun]:
        interrupted, self.interrupted = self.interrupted, []
        return interrupted


def fake_service(settings: Settings | None = None, **sandbox: Any) -> KernelService:
    """A real ``KernelService`` on fake adapters (call ``await service.start_up()`` on a loop)."""
    backend = FakeSandbox(**sandbox)
    settings = settings or Settings(interrupt_grace=0.2, output_flush_interval=0.05)
    return KernelService(settings, backend, FakeConnector(backend), FakeStore())


def kernel_at(service: KernelService, kernel_id: int, owner: str | None = None) -> Kernel:
    """Register a kernel with a given id and no container (for HTTP tests that never run code)."""
    kernel = Kernel(id=kernel_id, owner=owner, state=KernelState.IDLE, created=time.time())
    service.registry.add(kernel)
    return kernel


# --- issue 11: the state several replicas share (``Coordination``), in memory ----------------------------------------


@dataclass
class FakeDeployment:
    """What the replicas of one deployment share: the store's kernels, pool records, pending starts, the leader."""

    store: FakeStore
    pool: dict[int, dict[str, Any]] = field(default_factory=dict)
    admissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    leader: str | None = None


class FakeCoordination:
    """One replica's ``Coordination`` on a ``FakeDeployment``. Every call yields to the loop once (a round trip)."""

    def __init__(self, deployment: FakeDeployment, replica: str) -> None:
        self.deployment = deployment
        self.replica = replica
        self._tickets = 0

    async def close(self) -> None:
        await self.resign()

    def _pending(self, owner: str | None = None, *, mine: bool = False) -> int:
        now, kernels = time.time(), self.deployment.store.kernels
        return sum(
            1 for a in self.deployment.admissions.values()
            if a["expires_at"] > now and a["kernel_id"] not in kernels and (not mine or a["owner"] == owner)
        )  # fmt: skip

    async def admit(self, owner: str | None, max_kernels: int, max_per_key: int, ttl: float) -> Any:
        from gateway.kernels.ports import AdmissionRefusal

        await asyncio.sleep(0)
        live = [r for r in self.deployment.store.kernels.values() if r.state != "dead"]
        if len(live) + self._pending() >= max_kernels:
            return AdmissionRefusal("max_kernels")
        if owner is not None and sum(r.owner == owner for r in live) + self._pending(owner, mine=True) >= max_per_key:
            return AdmissionRefusal("max_kernels_per_key")
        self._tickets += 1
        ticket = f"{self.replica}-{self._tickets}"
        self.deployment.admissions[ticket] = {"owner": owner, "kernel_id": None, "expires_at": time.time() + ttl}
        return ticket

    async def bind(self, ticket: str, kernel_id: int) -> None:
        await asyncio.sleep(0)
        self.deployment.admissions[ticket]["kernel_id"] = kernel_id

    def release(self, ticket: str) -> None:
        self.deployment.admissions.pop(ticket, None)

    async def expire_admissions(self) -> int:
        now = time.time()
        expired = [t for t, a in self.deployment.admissions.items() if a["expires_at"] < now]
        for ticket in expired:
            del self.deployment.admissions[ticket]
        return len(expired)

    async def reserve(self, kernel_id: int, jupyter_id: str, runtime: str, filler: str) -> None:
        await asyncio.sleep(0)
        self.deployment.pool[kernel_id] = {
            "uuid": jupyter_id, "runtime": runtime, "state": "starting", "filler": filler, "sandbox": {},
            "key": "", "ready_at": None, "claimed_at": None,
        }  # fmt: skip

    async def mark_ready(self, kernel_id: int, sandbox: dict[str, Any], hmac_key: str) -> bool:
        await asyncio.sleep(0)
        record = self.deployment.pool.get(kernel_id)
        if record is None or record["state"] != "starting":
            return False
        record.update(state="ready", sandbox=sandbox, key=hmac_key, ready_at=time.time())
        return True

    def _ready(self, runtime: str) -> list[int]:
        ready = [(r["ready_at"], k) for k, r in self.deployment.pool.items() if r["state"] == "ready"]
        return [k for _, k in sorted(ready) if self.deployment.pool[k]["runtime"] == runtime]

    async def claim(self, runtime: str, prefer: Any = ()) -> Any:
        await asyncio.sleep(0)
        ready = self._ready(runtime)
        if not ready:
            return None
        kernel_id = next((k for k in prefer if k in ready), ready[0])  # the first of ``prefer`` that is ready
        record = self.deployment.pool[kernel_id]
        pooled = self._pooled(kernel_id)
        record.update(state="claimed", claimed_at=time.time(), key="")
        return pooled

    async def ready(self, runtime: str, limit: int) -> list[Any]:
        return [self._pooled(k) for k in self._ready(runtime)[:limit]]

    def _pooled(self, kernel_id: int) -> Any:
        from gateway.kernels.ports import PooledKernel

        r = self.deployment.pool[kernel_id]
        return PooledKernel(kernel_id, r["uuid"], r["runtime"], r["sandbox"], r["key"], r["ready_at"])

    async def drop(self, kernel_id: int) -> bool:
        record = self.deployment.pool.get(kernel_id)
        if record is None or record["state"] == "claimed":
            return False
        del self.deployment.pool[kernel_id]
        return True

    async def drop_container(self, container_id: str) -> int | None:
        for kernel_id, record in list(self.deployment.pool.items()):
            if record["state"] == "ready" and record["sandbox"].get("container_id") == container_id:
                del self.deployment.pool[kernel_id]
                return kernel_id
        return None

    async def counts(self, runtime: str) -> Any:
        from gateway.kernels.ports import PoolCounts

        states = [r["state"] for r in self.deployment.pool.values() if r["runtime"] == runtime]
        return PoolCounts(states.count("ready"), states.count("starting"))

    async def sweep_claimed(self, older_than: float) -> int:
        now, kernels = time.time(), self.deployment.store.kernels
        swept = [
            k for k, r in self.deployment.pool.items()
            if r["state"] == "claimed" and (k in kernels or r["claimed_at"] < now - older_than)
        ]  # fmt: skip
        for kernel_id in swept:
            del self.deployment.pool[kernel_id]
        return len(swept)

    async def unclaimed(self) -> list[tuple[int, str, str]]:
        return [(k, r["state"], r["filler"]) for k, r in self.deployment.pool.items() if r["state"] != "claimed"]

    async def known_kernel_ids(self) -> set[int]:
        pending = {a["kernel_id"] for a in self.deployment.admissions.values() if a["kernel_id"] is not None}
        return set(self.deployment.store.kernels) | set(self.deployment.pool) | pending

    async def try_acquire(self) -> bool:
        await asyncio.sleep(0)
        if self.deployment.leader in (None, self.replica):
            self.deployment.leader = self.replica
        return self.deployment.leader == self.replica

    async def resign(self) -> None:
        if self.deployment.leader == self.replica:
            self.deployment.leader = None


def fake_replicas(settings: Settings, count: int = 2, **sandbox: Any) -> tuple[list[KernelService], FakeDeployment]:
    """``count`` real ``KernelService``s of one deployment: one fake engine, one fake store, one ``FakeDeployment``
    (call ``await service.start_up()`` on each)."""
    backend, store = FakeSandbox(**sandbox), FakeStore()
    deployment = FakeDeployment(store)
    services = [
        KernelService(
            settings, backend, FakeConnector(backend), store, coordination=FakeCoordination(deployment, f"r{n}")
        )
        for n in range(count)
    ]
    return services, deployment


class FakeReplicas:
    """Issue 11: the shared ownership state of several replicas in memory (what the database holds): kernel owners
    and epochs, live replicas, and the one store and sandbox they share."""

    def __init__(self, store: FakeStore, sandbox: FakeSandbox, deployment: FakeDeployment | None = None) -> None:
        self.store, self.sandbox, self.deployment = store, sandbox, deployment
        self.owners: dict[int, tuple[str | None, int]] = {}  # kernel id -> (owner, epoch)
        self.alive: set[str] = set()

    def service(self, replica_id: str, settings: Settings) -> KernelService:
        """A replica: a real ``KernelService`` on the shared fakes, with its own ``FakeOwnership`` (and its own
        ``FakeCoordination`` when the replicas share a ``deployment``)."""
        ownership = FakeOwnership(self, replica_id)
        store: Any = _OwnedView(self.store, ownership)
        coordination = None if self.deployment is None else FakeCoordination(self.deployment, replica_id)
        return KernelService(
            settings, self.sandbox, FakeConnector(self.sandbox), store, coordination=coordination, ownership=ownership
        )


class _OwnedView:
    """The shared store as one replica sees it at start-up: only the kernels it owns (as the SQL store does)."""

    def __init__(self, store: FakeStore, ownership: FakeOwnership) -> None:
        self._store, self._ownership = store, ownership

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def load_kernels(self, instance: str) -> list[KernelRecord]:
        owners = self._ownership.replicas.owners
        mine = self._ownership.replica_id
        return [r for r in await self._store.load_kernels(instance) if owners.get(r.id, (None, 0))[0] == mine]


class FakeOwnership:
    """A ``KernelOwnership`` on ``FakeReplicas``; a kernel a replica starts is recorded by ``own``."""

    def __init__(self, replicas: FakeReplicas, replica_id: str) -> None:
        self.replicas, self.replica_id = replicas, replica_id
        self.epochs: dict[int, int] = {}
        self.valid = False
        self.on_lost: Callable[[int], None] | None = None

    def own(self, kernel_id: int) -> None:
        _, epoch = self.replicas.owners.get(kernel_id, (None, 0))
        self.replicas.owners[kernel_id] = (self.replica_id, epoch + 1)
        self.epochs[kernel_id] = epoch + 1

    def lease_valid(self) -> bool:
        return self.valid and self.replica_id in self.replicas.alive

    def holds(self, kernel_id: int) -> bool:
        return kernel_id in self.epochs

    def release(self, kernel_id: int) -> None:
        self.epochs.pop(kernel_id, None)

    def watch_lost(self, on_lost: Callable[[int], None]) -> None:
        self.on_lost = on_lost

    async def join(self) -> None:
        self.replicas.alive.add(self.replica_id)
        self.valid = True

    async def heartbeat(self) -> None:
        self.replicas.alive.add(self.replica_id)
        self.valid = True

    async def leave(self) -> None:
        self.replicas.alive.discard(self.replica_id)
        self.valid = False

    async def others_alive(self) -> bool:
        return bool(self.replicas.alive - {self.replica_id})

    def _orphan(self, kernel_id: int) -> bool:
        owner, _ = self.replicas.owners.get(kernel_id, (None, 0))
        return owner is None or owner == self.replica_id or owner not in self.replicas.alive

    async def claim_orphans(self) -> list[int]:
        claimed = [k for k in self.replicas.store.kernels if self._orphan(k)]
        for kernel_id in claimed:
            self.own(kernel_id)
        return claimed

    def _location(self, kernel_id: int) -> KernelLocation:
        owner, epoch = self.replicas.owners.get(kernel_id, (None, 0))
        return KernelLocation(kernel_id, owner, epoch, owner in self.replicas.alive, f"http://{owner}")

    async def orphans(self) -> list[KernelLocation]:
        return [
            self._location(k) for k in self.replicas.store.kernels
            if self._orphan(k) and self.replicas.owners.get(k, (None, 0))[0] != self.replica_id
        ]  # fmt: skip

    async def locate(self, kernel_ref: int | str) -> KernelLocation | None:
        kernel_id = int(kernel_ref)
        return self._location(kernel_id) if kernel_id in self.replicas.store.kernels else None

    async def peers(self) -> list[ReplicaPeer]:
        return [ReplicaPeer(name, f"http://{name}") for name in sorted(self.replicas.alive - {self.replica_id})]

    async def stored_elsewhere(self, answered: Collection[str]) -> list[KernelRecord]:
        served = {self.replica_id, *answered}
        store = self.replicas.store
        records = [
            r for instance in {k.instance for k in store.kernels.values()} for r in await store.load_kernels(instance)
        ]
        return [r for r in records if self.replicas.owners.get(r.id, (None, 0))[0] not in served]

    async def adopt(self, kernel_id: int, seen_epoch: int, detail: str) -> Adopted | None:
        if not self._orphan(kernel_id) or self.replicas.owners.get(kernel_id, (None, 0))[1] != seen_epoch:
            return None
        self.own(kernel_id)
        store = self.replicas.store
        runs = store.runs.values()
        open_runs = [run for run in runs if run.get("kernel_id") == kernel_id and run["state"] == "running"]
        for run in open_runs:
            run["state"] = "interrupted"
        (record,) = [r for r in await store.load_kernels(store.kernels[kernel_id].instance) if r.id == kernel_id]
        return Adopted(record, bool(open_runs))
