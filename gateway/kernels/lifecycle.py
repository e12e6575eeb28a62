"""A kernel's container over its life: start (warm pool or cold), restart, replace, mark dead, shut down.

Every container comes from ``KernelLauncher``. A replacement runs either under the kernel's lock (``replace``) or
in a background task that everyone who uses the kernel next waits for (``replace_soon`` / ``settled``), so a run
that lost its kernel answers at once. Every state change a caller can observe is written to the store first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gateway.errors import ImageNotAllowed, KernelGone, KernelUnresponsive, RuntimeNotAllowed, SandboxUnavailable
from gateway.kernels.admission import Admission, LocalAdmission
from gateway.kernels.kernel import Kernel, KernelEvent, KernelState
from gateway.kernels.launcher import KernelLauncher, Launched
from gateway.kernels.packages import NoPackages
from gateway.kernels.pool import ReadyKernel
from gateway.kernels.ports import (
    KernelConnection,
    KernelObserver,
    KernelPackages,
    KernelRecord,
    KernelStore,
    SandboxHandle,
    WarmPool,
)
from gateway.kernels.registry import KernelRegistry, new_kernel_id
from gateway.kernels.tasks import TaskSet

log = logging.getLogger(__name__)


class KernelLifecycle:
    """Starts, replaces and stops kernels' containers; keeps the registry and the store in step."""

    def __init__(
        self,
        *,
        instance: str,
        runtimes: tuple[str, ...],
        default_runtime: str,
        registry: KernelRegistry,
        launcher: KernelLauncher,
        store: KernelStore,
        pool: WarmPool,
        tasks: TaskSet,
        mem_limit_mb: int,
        observer: KernelObserver,
        images: tuple[str, ...] = (),
        packages: KernelPackages | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.observer = observer
        self.images = images  # the deployment's image first, then the others a kernel may pick (issue 13)
        self.packages: KernelPackages = packages or NoPackages()
        self.instance = instance
        self.mem_limit_mb = mem_limit_mb
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self.registry = registry
        self.launcher = launcher
        self.store = store
        self.pool = pool
        self.tasks = tasks
        self.admission: Admission = admission or LocalAdmission(registry)
        self._retiring: dict[int, asyncio.Task[None]] = {}  # sandbox id -> its container's removal in the background

    @property
    def limits(self) -> dict[str, object]:
        return self.launcher.backend.limits

    def record(self, kernel: Kernel) -> KernelRecord:
        """The kernel as the store keeps it."""
        handle = kernel.handle
        return KernelRecord(
            id=kernel.id,
            uuid=kernel.uuid,
            instance=self.instance,
            owner=kernel.owner,
            runtime=kernel.runtime,
            image=kernel.image,
            env=kernel.env,
            sandbox=handle.to_state() if handle is not None else {},
            hmac_key=handle.key if handle is not None else "",
            limits=self.limits,
            state=kernel.state.value,
            last_death=kernel.last_death,
            created_at=kernel.created,
            last_activity_at=kernel.last_activity,
        )

    # --- start ----------------------------------------------------------------------------------------------

    async def start(
        self, owner: str | None, runtime: str | None, env: dict[str, str] | None, image: str | None = None
    ) -> Kernel:
        """A new kernel for ``owner``, answering, registered and stored. From the warm pool when it holds one of
        this runtime and neither an environment nor an image of its own is asked for; cold otherwise. Raises
        TooManyKernels, RuntimeNotAllowed, ImageNotAllowed, KernelStartFailed."""
        runtime = runtime or self.default_runtime
        if runtime not in self.runtimes:
            raise RuntimeNotAllowed(runtime, self.runtimes)
        image = self._allowed_image(image)
        ticket = await self.admission.admit(owner)
        began = time.monotonic()
        try:
            ready = await self._claim(runtime) if not env and image is None else None
            if ready is not None:
                kernel = Kernel(id=ready.kernel_id, uuid=ready.jupyter_id, owner=owner, runtime=runtime)
                await self._bind(ticket, kernel, ready.launched)
                launched = ready.launched
            else:
                kernel = Kernel(id=new_kernel_id(), owner=owner, runtime=runtime, env=dict(env or {}), image=image)
                await self.admission.bind(ticket, kernel.id)
                launched = await self.launcher.launch(kernel.id, kernel.uuid, runtime, env, image=image)
                kernel.created = time.time()  # its lifetime counts from when it answers
            self._attach(kernel, launched)
            try:
                await self.store.add_kernel(self.record(kernel))
            except BaseException:
                await asyncio.shield(self.launcher.teardown(kernel.id, kernel.client))
                raise
            self.registry.add(kernel)
        finally:
            self.admission.release(ticket)
        kernel.notify(KernelEvent.STARTED)
        self.observer.kernel_started(kernel, "pool" if ready is not None else "cold", began)
        return kernel

    def _allowed_image(self, image: str | None) -> str | None:
        """None for the deployment's image; ``image`` if it is on the allow-list; ImageNotAllowed otherwise."""
        if image is None or (self.images and image == self.images[0]):
            return None
        if image not in self.images[1:]:
            raise ImageNotAllowed(image, self.images)
        return image

    async def _claim(self, runtime: str) -> ReadyKernel | None:
        """A warm kernel from the pool (claimed in memory, or through the shared pool's records)."""
        return await self.pool.claim(runtime)

    async def _bind(self, ticket: object, kernel: Kernel, launched: Launched) -> None:
        """Tell admission the claimed kernel's id; if that fails, the claimed kernel is removed."""
        try:
            await self.admission.bind(ticket, kernel.id)
        except BaseException:
            await asyncio.shield(self.launcher.teardown(kernel.id, launched.client))
            raise

    @staticmethod
    def _attach(kernel: Kernel, launched: Launched) -> None:
        kernel.handle, kernel.client = launched.handle, launched.client
        kernel.set_state(KernelState.IDLE)
        kernel.touch()

    # --- replace --------------------------------------------------------------------------------------------

    async def restart(self, kernel: Kernel) -> None:
        """The restart a user asked for: a fresh container (empty memory); cells kept, marked as not run."""
        async with kernel.lock:
            await self.settled(kernel)
            await self.replace(kernel, died=False)

    async def replace(self, kernel: Kernel, *, died: bool, forget: bool = True) -> None:
        """Swap in a fresh container. ``died``: the old one was lost (websockets are told the kernel is
        restarting), not stopped on request. Caller holds the kernel's lock, or is ``replace_soon``'s task.

        From the warm pool when it holds one of the kernel's runtime and the kernel has no environment of its own:
        the kernel takes that container (started for a pool id, which stays its sandbox id) and the old one is
        removed in the background. Cold otherwise, in a container started for the kernel's own id."""
        kernel.set_state(KernelState.STARTING)
        if forget:
            _forget_runs(kernel)
        event = KernelEvent.DIED if died else KernelEvent.STOPPED
        # A warm-pool container for the same kernel id (issue 15): only for a kernel of the deployment's own
        # image and environment; its packages (issue 13) are installed again below, into the new container.
        ready = await self._claim(kernel.runtime) if not kernel.env and kernel.image is None else None
        if ready is not None:
            self._retire(kernel, event)
            launched = ready.launched
        else:
            await self._teardown(kernel, event)
            try:
                await self._retired(kernel.id)  # its own id's container may still be going (an earlier restart)
                launched = await self.launcher.launch(
                    kernel.id, kernel.uuid, kernel.runtime, kernel.env, image=kernel.image
                )
            except BaseException as error:
                await asyncio.shield(self.mark_dead(kernel, f"could not be restarted: {error}"))
                raise
        self._attach(kernel, launched)
        await self.packages.after_launch(kernel)  # what it had installed, before anyone uses it
        record = self.record(kernel)
        await self.store.kernel_replaced(
            kernel.id,
            kernel.notebook.in_order(),
            sandbox=record.sandbox,
            hmac_key=record.hmac_key,
            limits=record.limits,
            state=record.state,
            last_death=kernel.last_death,
        )
        kernel.notify(KernelEvent.STARTED)

    def replace_soon(self, kernel: Kernel, *, died: bool) -> None:
        """Start replacing the container and return at once; whoever uses the kernel next waits for it
        (``settled``). A failure leaves the kernel dead, with the reason."""
        _forget_runs(kernel)
        kernel.set_state(KernelState.STARTING)
        task = self.tasks.spawn(self.replace(kernel, died=died, forget=False), name=f"replace-{kernel.id}")
        kernel.replacing = task

        def done(_: asyncio.Task[None]) -> None:
            if kernel.replacing is task:
                kernel.replacing = None

        task.add_done_callback(done)

    @staticmethod
    async def settled(kernel: Kernel) -> None:
        """Wait for a pending replacement of the kernel's container to end (failed or not)."""
        if kernel.replacing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(kernel.replacing)

    # --- death and shut down --------------------------------------------------------------------------------

    async def mark_dead(self, kernel: Kernel, cause: str) -> None:
        """The kernel has no working container any more: dead with ``cause``, in memory and in the store."""
        kernel.set_state(KernelState.DEAD)
        kernel.last_death = cause
        kernel.touch()
        log.warning("kernel %d is dead: %s", kernel.id, cause)
        await self.store.update_kernel(
            kernel.id, state=KernelState.DEAD.value, last_death=cause, container_id="",
            last_activity_at=kernel.last_activity,
        )  # fmt: skip

    async def shutdown(self, kernel_id: int, reason: str | None = None) -> None:
        """Stop a kernel for good and remove its container; its cells are gone with it. Raises KernelNotFound."""
        kernel = self.registry.get(kernel_id)
        self.registry.remove(kernel_id, reason)
        kernel.set_state(KernelState.DEAD)
        kernel.last_death = f"shut down because {reason}" if reason else "shut down"
        if kernel.client is not None:
            kernel.client.mark_dead(kernel.last_death)  # a run in progress ends now, as "died"
        await self.settled(kernel)  # a container being created must exist before it can be removed
        await self._teardown(kernel, None)
        kernel.notify(KernelEvent.SHUT_DOWN)
        self.observer.kernel_gone(kernel, reason)
        await self.store.delete_kernel(kernel_id)
        await self.packages.forget(kernel_id, kernel.sandbox_id)

    async def forget(self, kernel: Kernel, reason: str) -> None:
        """Remove a dead kernel's record (retention expired)."""
        self.registry.remove(kernel.id, reason)
        kernel.notify(KernelEvent.SHUT_DOWN)
        self.observer.kernel_gone(kernel, None)
        await self.store.delete_kernel(kernel.id)
        await self.packages.forget(kernel.id, kernel.sandbox_id)

    async def stop_for_good(self, kernel: Kernel) -> None:
        """The gateway stops with ``on_stop=shutdown``: remove the container; the record stays, marked dead."""
        was_alive = kernel.alive
        await self._teardown(kernel, None)
        if was_alive:
            await self.mark_dead(kernel, "the gateway was stopped (on_stop=shutdown)")

    async def death_cause(self, kernel: Kernel) -> str:
        """Why the kernel's container stopped, as its engine tells it."""
        ended = await self.launcher.backend.exit_status(kernel.sandbox_id)
        return "its container stopped answering" if ended is None else ended.describe(self.mem_limit_mb)

    def let_go(self, kernel: Kernel) -> None:
        """The gateway stops with ``on_stop=keep``: close the connection, leave the container running."""
        if kernel.client is not None:
            kernel.client.close()
            kernel.client = None

    def _detach(self, kernel: Kernel, event: KernelEvent | None) -> tuple[int, KernelConnection | None]:
        """Take the container away from the kernel (listeners are told ``event``); return its sandbox id and
        connection, for the caller to tear down."""
        sandbox_id, client = kernel.sandbox_id, kernel.client
        kernel.client = None
        if kernel.handle is not None:
            kernel.handle = None
            if event is not None:
                kernel.notify(event)
        return sandbox_id, client

    async def _teardown(self, kernel: Kernel, event: KernelEvent | None) -> None:
        await self.launcher.teardown(*self._detach(kernel, event))

    def _retire(self, kernel: Kernel, event: KernelEvent) -> None:
        """Take the container away from the kernel and remove it in the background (``_retired`` waits for it)."""
        sandbox_id, client = self._detach(kernel, event)
        task = self.tasks.spawn(self.launcher.teardown(sandbox_id, client), name=f"retire-{sandbox_id}")
        self._retiring[sandbox_id] = task
        task.add_done_callback(lambda _: self._retiring.pop(sandbox_id, None))

    async def _retired(self, sandbox_id: int) -> None:
        """Wait until a container of ``sandbox_id`` being removed in the background is gone (failed or not)."""
        task = self._retiring.get(sandbox_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    # --- recovery -------------------------------------------------------------------------------------------

    async def reattach(self, kernel: Kernel, handle: SandboxHandle, *, interrupt: bool, timeout: float) -> str | None:
        """Connect to a running kernel left by an earlier run of this gateway (same sockets, key and memory).
        Returns None on success, else why it could not be reached (the caller marks it dead)."""
        backend = self.launcher.backend
        client = self.launcher.connector.connect(handle.connection_info)
        try:
            # What ran when the gateway stopped is cut off, with one signal: the engine's SIGINT only if the kernel
            # does not acknowledge the request (a second one would cut the cell's own cleanup short).
            if interrupt and not await client.interrupt(acknowledged_within=1.0):
                with contextlib.suppress(SandboxUnavailable):  # its node does not answer now: waiting tells
                    await backend.signal(handle.kernel_id, "SIGINT")
            await client.wait_ready(timeout)
        except (KernelUnresponsive, KernelGone) as error:
            client.close()
            return await self._unreachable(handle, error)
        kernel.handle, kernel.client = handle, client
        kernel.set_state(KernelState.IDLE)
        await self.packages.after_launch(kernel)  # same memory: only what is missing (nothing, normally)
        kernel.notify(KernelEvent.STARTED)
        log.info("re-attached kernel %d", kernel.id)
        return None

    async def _unreachable(self, handle: SandboxHandle, error: Exception) -> str:
        """Why a kernel being re-attached did not answer (``error``: what failed), as its engine tells it; its
        container is removed. A cause the backend names itself (e.g. ``node n1 lost``) is given as it is."""
        backend = self.launcher.backend
        try:
            ended = await backend.exit_status(handle.kernel_id)
        except SandboxUnavailable as unreachable:  # its node does not answer either: nothing more is known
            ended, error = None, unreachable
        await backend.remove(handle.kernel_id)
        if ended is None:
            return f"it did not answer when the gateway restarted ({error})"
        if ended.cause:
            return ended.cause
        return f"{ended.describe(self.mem_limit_mb)} while the gateway restarted"


def _forget_runs(kernel: Kernel) -> None:
    for cell in kernel.notebook.in_order():
        cell.forget_run()
