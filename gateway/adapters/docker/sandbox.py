"""The ``local`` sandbox backend: kernel containers on one Docker engine, hardened and limited, each with its
sockets in its own directory on this host; watched for deaths, removed idempotently.

Every docker-py call runs in this module's own thread pool, never on the event loop. Containers carry labels
(``jupycell.managed``, ``jupycell.instance``, ``jupycell.kernel_id``, ``jupycell.jupyter_id``) so a gateway finds
what is its own and an operator finds a notebook's container; removal is idempotent (already gone counts as
removed).

Warm-pool containers (``gateway.kernels.pool``) are made exactly like a kernel's, for the ids they will have once
claimed, plus the ``jupycell.pool`` label: a claimed one needs no change. One a restart takes for an existing kernel
keeps its name and labels (the pool's id): every operation here is keyed by the id a container was started for (the
sandbox id), which the core keeps with the kernel.

``extra_mounts`` (packages on demand, issue 13) adds per-container mounts (keyed by the sandbox id): its wheel
directory (read-only) and the tmpfs packages are installed into.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Ulimit

from gateway.adapters.docker.sockets import (
    CONTAINER_SOCKET_DIR,
    host_view,
    new_connection_info,
    prepare_socket_dir,
    seal_socket_dir,
)
from gateway.errors import KernelStartFailed, SandboxUnavailable
from gateway.kernels.ports import ConnectionInfo, ContainerExit, DeathCallback, OwnContainer, SandboxHandle
from gateway.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A kernel's extra mounts, by kernel id: ``{"volumes": {...}, "tmpfs": {...}}`` as docker-py takes them. Blocking.
ExtraMounts = Callable[[int], dict[str, Any]]

LABEL_MANAGED = "jupycell.managed"
LABEL_INSTANCE = "jupycell.instance"
LABEL_KERNEL_ID = "jupycell.kernel_id"
LABEL_JUPYTER_ID = "jupycell.jupyter_id"  # the kernel's UUID in Jupyter's API
LABEL_POOL = "jupycell.pool"  # started ahead of time for the warm pool (kept after it is claimed)

CONTAINER_WORK_DIR = "/work"


@dataclass(frozen=True)
class SandboxSpec:
    """The limits and isolation of one kernel container; built from settings, shown in kernel listings."""

    image: str
    runtime: str
    mem_limit_mb: int
    cpu_limit: float
    pids_limit: int
    tmp_size_mb: int
    work_size_mb: int
    shm_size_mb: int
    nofile_limit: int
    log_max_size_kb: int
    uid: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxSpec:
        return cls(
            image=settings.sandbox_image,
            runtime=settings.runtime,
            mem_limit_mb=settings.mem_limit_mb,
            cpu_limit=settings.cpu_limit,
            pids_limit=settings.pids_limit,
            tmp_size_mb=settings.tmp_size_mb,
            work_size_mb=settings.work_size_mb,
            shm_size_mb=settings.shm_size_mb,
            nofile_limit=settings.nofile_limit,
            log_max_size_kb=settings.log_max_size_kb,
            uid=settings.kernel_uid,
        )

    def run_kwargs(self) -> dict[str, Any]:
        """docker-py ``containers.run`` arguments: no network, non-root, no privileges, read-only, limited."""
        threads = str(max(1, int(self.cpu_limit)))
        uid = self.uid
        return dict(
            image=self.image,
            runtime=self.runtime,
            network_mode="none",
            user=f"{uid}:{uid}",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={self.tmp_size_mb}m",
                CONTAINER_WORK_DIR: f"rw,nosuid,nodev,size={self.work_size_mb}m,uid={uid},gid={uid},mode=0700",
            },
            shm_size=f"{self.shm_size_mb}m",
            mem_limit=f"{self.mem_limit_mb}m",
            memswap_limit=f"{self.mem_limit_mb}m",
            nano_cpus=int(self.cpu_limit * 1e9),
            pids_limit=self.pids_limit,
            ulimits=[Ulimit(name="nofile", soft=self.nofile_limit, hard=self.nofile_limit)],
            init=True,
            ipc_mode="private",
            log_config=LogConfig(type="json-file", config={"max-size": f"{self.log_max_size_kb}k", "max-file": "1"}),
            environment={
                "OMP_NUM_THREADS": threads,
                "OPENBLAS_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                "NUMEXPR_NUM_THREADS": threads,
            },
        )


class DockerSandbox:
    """Creates, watches and removes the kernel containers of one gateway instance (a ``SandboxBackend``)."""

    def __init__(
        self, spec: SandboxSpec, *, instance: str, instance_dir: Path, docker_host: str | None,
        extra_mounts: ExtraMounts | None = None,
    ) -> None:  # fmt: skip
        self.instance = instance
        self.extra_mounts = extra_mounts
        self.instance_dir = instance_dir
        self.spec = spec
        self._docker_host = docker_host
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self._events: Any = None
        self._events_thread: threading.Thread | None = None
        self._watching = False

    # --- plumbing -----------------------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                if self._docker_host:
                    self._client = docker.DockerClient(base_url=self._docker_host, max_pool_size=32)
                else:
                    self._client = docker.from_env(max_pool_size=32)
            except DockerException as error:
                raise SandboxUnavailable(f"Docker engine unreachable: {error}") from error
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking docker-py call in the pool; engine failures become SandboxUnavailable."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except (DockerException, OSError) as error:
            if isinstance(error, NotFound):
                raise
            raise SandboxUnavailable(f"Docker engine error: {error}") from error

    def container_name(self, kernel_id: int) -> str:
        return f"jupycell-{self.instance}-{kernel_id}"

    @classmethod
    def from_settings(cls, settings: Settings, extra_mounts: ExtraMounts | None = None) -> DockerSandbox:
        return cls(
            SandboxSpec.from_settings(settings),
            instance=settings.instance,
            instance_dir=settings.instance_dir,
            docker_host=settings.docker_host,
            extra_mounts=extra_mounts,
        )

    @property
    def limits(self) -> dict[str, Any]:
        return asdict(self.spec)

    def socket_dir(self, kernel_id: int) -> Path:
        return self.instance_dir / str(kernel_id)

    def _labels(self, kernel_id: int, jupyter_id: str | None = None) -> dict[str, str]:
        labels = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance, LABEL_KERNEL_ID: str(kernel_id)}
        if jupyter_id:
            labels[LABEL_JUPYTER_ID] = jupyter_id
        return labels

    def _own_filter(self) -> dict[str, Any]:
        return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={self.instance}"]}

    # --- operations ---------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise SandboxUnavailable unless the engine answers."""
        await self._call(lambda: self.client.ping())

    async def engine_info(self) -> dict[str, Any]:
        """The engine's ``docker info``."""
        info: dict[str, Any] = await self._call(self.client.info)
        return info

    async def has_image(self, image: str) -> bool:
        """Whether the engine has ``image`` (nothing is pulled)."""
        try:
            await self._call(self.client.images.get, image)
        except NotFound:
            return False
        return True

    async def check_ready(self, runtimes: tuple[str, ...] = (), images: tuple[str, ...] = ()) -> None:
        """Start-up check: the engine answers, the images exist and the runtimes are registered."""
        await self.ping()
        for image in dict.fromkeys((self.spec.image, *images)):
            try:
                await self._call(self.client.images.get, image)
            except NotFound:
                raise SandboxUnavailable(f"Sandbox image {image!r} not found; build it with `make images`.") from None
        info = await self._call(self.client.info)
        registered = info.get("Runtimes", {})
        for runtime in dict.fromkeys((self.spec.runtime, *runtimes)):
            if runtime not in registered:
                raise SandboxUnavailable(
                    f"Container runtime {runtime!r} is not registered with the engine "
                    f"(available: {', '.join(sorted(registered))}); see scripts/ensure-docker.sh."
                )

    async def start(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str], *, pooled: bool = False,
        image: str | None = None, node: str | None = None,
    ) -> SandboxHandle:  # fmt: skip
        """Write fresh connection info into a new socket directory, then create and start the kernel's container
        with that directory mounted. ``runtime`` and ``image`` were checked by the caller; ``env`` adds to the
        environment. One machine: ``node`` is ignored."""
        info = new_connection_info()
        socket_dir = self.socket_dir(kernel_id)
        await asyncio.to_thread(prepare_socket_dir, socket_dir, info, self.spec.uid)
        container_id = await self.create_container(
            kernel_id, socket_dir, runtime, env, jupyter_id=jupyter_id, pooled=pooled, image=image
        )
        return SandboxHandle(kernel_id, container_id, self.container_name(kernel_id), host_view(info, socket_dir))

    async def create_container(
        self,
        kernel_id: int,
        socket_dir: Path,
        runtime: str | None,
        env: dict[str, str] | None,
        *,
        jupyter_id: str | None = None,
        pooled: bool = False,
        image: str | None = None,
    ) -> str:
        """Create and start a kernel container on a socket directory the caller prepared (the node agent does);
        return its id. Labelled ``jupycell.pool`` when ``pooled``."""
        labels = self._labels(kernel_id, jupyter_id)
        if pooled:
            labels[LABEL_POOL] = "true"
        return await self._run(kernel_id, socket_dir, runtime, labels, env, image)

    async def seal(self, handle: SandboxHandle) -> None:
        await asyncio.to_thread(seal_socket_dir, self.socket_dir(handle.kernel_id))

    def restore(self, kernel_id: int, state: dict[str, Any], key: str) -> SandboxHandle:
        connection: ConnectionInfo = {**state.get("connection", {}), "key": key}  # type: ignore[typeddict-item]
        return SandboxHandle(
            kernel_id,
            str(state.get("container_id", "")),
            str(state.get("name", self.container_name(kernel_id))),
            host_view(connection, self.socket_dir(kernel_id)),
        )

    async def signal(self, kernel_id: int, signal: str) -> None:
        def kill() -> None:
            try:
                self.client.api.kill(self.container_name(kernel_id), signal=signal)
            except NotFound:
                pass
            except APIError as error:
                if error.status_code != 409:  # 409: not running
                    raise

        await self._call(kill)

    async def _run(
        self,
        kernel_id: int,
        socket_dir: Path,
        runtime: str | None,
        labels: dict[str, str],
        env: dict[str, str] | None,
        image: str | None = None,
    ) -> str:
        kwargs = self.spec.run_kwargs()
        kwargs["environment"] = {**kwargs["environment"], **(env or {})}
        kwargs.update(
            image=image or self.spec.image,
            runtime=runtime or self.spec.runtime,
            name=self.container_name(kernel_id),
            labels=labels,
            volumes={str(socket_dir): {"bind": CONTAINER_SOCKET_DIR, "mode": "rw"}},
            detach=True,
        )
        if self.extra_mounts is not None:
            mounts = await asyncio.to_thread(self.extra_mounts, kernel_id)
            kwargs["volumes"].update(mounts.get("volumes", {}))
            kwargs["tmpfs"] = {**kwargs["tmpfs"], **mounts.get("tmpfs", {})}
        try:
            container = await self._call(self.client.containers.run, **kwargs)
        except (ImageNotFound, NotFound) as error:
            raise KernelStartFailed(
                f"Sandbox image {kwargs['image']!r} not found: build it with `make images`."
            ) from error
        except SandboxUnavailable as error:
            await self.remove(kernel_id)
            raise KernelStartFailed(f"Could not start the kernel container: {error}") from error
        return str(container.id)

    async def exit_status(self, kernel_id: int) -> ContainerExit | None:
        """None while the container runs; how it ended otherwise (exit_code None if it is gone)."""
        try:
            container = await self._call(self.client.containers.get, self.container_name(kernel_id))
        except NotFound:
            return ContainerExit(exit_code=None, oom_killed=False)
        state = container.attrs["State"]
        if state.get("Running"):
            return None
        return ContainerExit(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")))

    async def logs(self, kernel_id: int, tail: int = 40) -> str:
        try:
            container = await self._call(self.client.containers.get, self.container_name(kernel_id))
            raw = await self._call(container.logs, tail=tail)
        except (NotFound, SandboxUnavailable):
            return ""
        return bytes(raw).decode(errors="replace")

    async def remove_container(self, name: str) -> None:
        """Kill and remove a container by name or id. Already gone is fine."""
        await self._remove_by_name(name)

    async def remove(self, kernel_id: int) -> None:
        """Kill and remove the kernel's container and its socket directory. Already gone is fine."""
        await self._remove_by_name(self.container_name(kernel_id))
        await asyncio.to_thread(shutil.rmtree, self.socket_dir(kernel_id), True)

    async def remove_leftovers(self, keep: set[int]) -> None:
        """Remove the socket directories of every kernel id not in ``keep``."""

        def remove() -> None:
            if not self.instance_dir.is_dir():
                return
            for entry in self.instance_dir.iterdir():
                if entry.name not in {str(k) for k in keep}:
                    shutil.rmtree(entry, ignore_errors=True)

        await asyncio.to_thread(remove)

    async def _remove_by_name(self, name: str) -> None:
        def remove() -> None:
            try:
                self.client.api.remove_container(name, force=True, v=True)
            except NotFound:
                pass
            except APIError as error:
                if error.status_code != 409:  # 409: removal already in progress
                    raise

        await self._call(remove)

    async def list_own(self) -> list[OwnContainer]:
        """Every container of this gateway instance, running or not."""

        def list_them() -> list[OwnContainer]:
            found = []
            for container in self.client.containers.list(all=True, filters=self._own_filter(), ignore_removed=True):
                state = container.attrs.get("State", {})
                try:
                    kernel_id: int | None = int(container.labels.get(LABEL_KERNEL_ID, ""))
                except ValueError:
                    kernel_id = None
                ended = None
                if not state.get("Running"):
                    ended = ContainerExit(exit_code=state.get("ExitCode"), oom_killed=bool(state.get("OOMKilled")))
                found.append(OwnContainer(container.name, container.id, kernel_id, ended))
            return found

        return await self._call(list_them)

    async def remove_all(self) -> int:
        """Remove every container of this gateway instance; return how many there were."""
        containers = await self._call(self.client.containers.list, all=True, filters=self._own_filter())
        await asyncio.gather(*(self._remove_by_name(c.name) for c in containers))
        return len(containers)

    # --- engine events ------------------------------------------------------------------------------------

    def watch_deaths(
        self, loop: asyncio.AbstractEventLoop, on_death: DeathCallback, on_resumed: Callable[[], None]
    ) -> None:
        """Follow the engine's event stream; call ``on_death(kernel_id, container_id)`` on the loop when a
        kernel's container dies. One thread for all kernels.

        If the stream breaks (engine restarted), follow it again, asking for the events missed meanwhile, and
        call ``on_resumed()`` on the loop: an engine that restarted has forgotten them, so the caller should
        look at its containers' state itself.
        """
        filters = {"type": "container", "event": ["die"], **self._own_filter()}
        self._watching = True

        def follow() -> None:
            since = int(time.time())
            while self._watching:
                try:
                    self._events = self.client.events(decode=True, filters=filters, since=since)
                    for event in self._events:
                        since = max(since, int(event.get("time", since)))
                        attributes = event.get("Actor", {}).get("Attributes", {})
                        try:
                            kernel_id = int(attributes.get(LABEL_KERNEL_ID, ""))
                        except ValueError:
                            continue
                        loop.call_soon_threadsafe(on_death, kernel_id, event.get("id", ""))
                except Exception as error:  # engine gone, or the stream was closed at shutdown
                    log.debug("engine event stream ended: %s", error)
                if self._watching:
                    log.warning("engine event stream ended; following it again")
                    time.sleep(1)
                    loop.call_soon_threadsafe(on_resumed)

        self._events_thread = threading.Thread(target=follow, name="docker-events", daemon=True)
        self._events_thread.start()

    def close(self) -> None:
        self._watching = False
        if self._events is not None:
            try:
                self._events.close()
            except Exception:  # closing a finished stream
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
