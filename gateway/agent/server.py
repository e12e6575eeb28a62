"""The agent process: control API and events over CurveZMQ, kernel containers through the local Docker backend.

Kernel containers are made by ``DockerSandbox`` and their socket directories by ``gateway.adapters.docker.sockets``,
exactly as the local backend makes them. The agent adds the relay (``gateway.agent.relay``) and remembers each
kernel's relay ports in ``state_dir/relays/<kernel_id>.json``; a restarted agent finds its containers by label
and opens their relays on the same ports, so gateway clients reconnect by themselves and kernels keep their
memory. Every socket is a Curve server whose ZAP handler admits only the allow-listed gateway keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.thread import ThreadAuthenticator

from gateway.adapters.docker import DockerSandbox
from gateway.adapters.docker.sockets import SOCKET_PREFIX, new_connection_info, prepare_socket_dir, seal_socket_dir
from gateway.agent.control import AgentError, ControlServer
from gateway.agent.images import ImageMissing, ImageRefused, NodeImages
from gateway.agent.keys import Keypair, load_allowed_keys, load_keypair
from gateway.agent.packages import NodePackages
from gateway.agent.protocol import (
    CHANNELS,
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    ZAP_DOMAIN,
    AnyRequest,
    KernelRequest,
    LogsRequest,
    PackagesLinkRequest,
    PackagesRequest,
    PackagesResolveRequest,
    RemoveContainerRequest,
    SignalRequest,
    StartRequest,
)
from gateway.agent.relay import Relays
from gateway.agent.settings import AgentSettings
from gateway.errors import SandboxUnavailable
from gateway.kernels.ports import ContainerExit
from gateway.protocol.socket_budget import allow_sockets
from gateway.settings import Settings

log = logging.getLogger(__name__)

AGENT_VERSION = "1"
_MAX_LOG_BYTES = 64 * 1024
#: ZMQ sockets of one kernel's relays (a front, a back and a steering pair per channel), and of the rest.
_SOCKETS_PER_KERNEL = 4 * len(CHANNELS)
_SOCKETS_BESIDES = 64


def relay_context(max_kernels: int) -> zmq.Context[Any]:
    """The agent's ZMQ context, with room for the sockets of ``max_kernels`` kernels' relays."""
    context: zmq.Context[Any] = zmq.Context()
    allow_sockets(context, _SOCKETS_PER_KERNEL * max_kernels + _SOCKETS_BESIDES)
    return context


class _AllowList:
    """ZAP credentials provider: a client gets in only with one of these public keys (Z85)."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class Agent:
    """One node's agent. ``await run(stop)`` serves until ``stop`` is set."""

    def __init__(self, settings: AgentSettings, sandbox_settings: Settings) -> None:
        if sandbox_settings.api_keys is not None or sandbox_settings.api_keys_file is not None:
            raise ValueError("the agent must not be given API keys (JUPYCELL_API_KEYS / JUPYCELL_API_KEYS_FILE)")
        if sandbox_settings.database_url is not None:
            raise ValueError("the agent must not be given the database (JUPYCELL_DATABASE_URL)")
        self.settings = settings
        self.sandbox_settings = sandbox_settings
        self.keypair: Keypair = load_keypair(settings.curve_secret_file)
        self.allowed = load_allowed_keys(settings.allowed_clients)
        self.boot_id = uuid.uuid4().hex
        self.packages = NodePackages(sandbox_settings)  # issue 13 on agents: wheels on this node
        self.sandbox = DockerSandbox.from_settings(
            sandbox_settings, self.packages.container_mounts if self.packages.enabled else None
        )
        self.images = NodeImages(settings.node_name, sandbox_settings.images, self.sandbox.has_image)
        self._relay_dir = settings.state_dir / "relays"
        self._starting: set[int] = set()
        self._seq = 0
        self._node: dict[str, Any] = {}
        self._context: zmq.Context[Any] | None = None
        self._events: zmq.asyncio.Socket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- life -------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await self.sandbox.check_ready(self.sandbox_settings.runtimes)
        await self.images.present()  # warns about allowed images missing here
        info = await self.sandbox.engine_info()
        self._node = {"cpus": info.get("NCPU"), "mem_mb": int(info.get("MemTotal", 0)) // 2**20}
        await asyncio.to_thread(self._relay_dir.mkdir, parents=True, exist_ok=True, mode=0o700)

        self._context = context = relay_context(self.settings.max_kernels)
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve_callback(domain=ZAP_DOMAIN.decode(), credentials_provider=_AllowList(self.allowed))
        actx = zmq.asyncio.Context.shadow(context.underlying)
        control = self._server_socket(actx, zmq.ROUTER, self.settings.control_port)
        self._events = self._server_socket(actx, zmq.PUB, self.settings.events_port)
        self.relays = Relays(
            context,
            self.keypair,
            bind_host=self.settings.bind_host,
            port_range=self.settings.relay_port_range,
            max_message_bytes=self.sandbox_settings.max_message_mb * 2**20,
        )
        try:
            await self._recover()
            self.sandbox.watch_deaths(loop, self._on_death, self._on_resumed)
            heartbeat = asyncio.create_task(self._heartbeats())
            control_server = ControlServer(
                self._handle, max_concurrent=self.settings.max_concurrent_requests,
                max_long_waiting=self.settings.max_kernels, tasks=self._tasks,
            )  # fmt: skip
            serve = asyncio.create_task(control_server.serve(control))
            log.info(
                "agent %s ready: control :%d, events :%d, %d kernels",
                self.settings.node_name,
                self.settings.control_port,
                self.settings.events_port,
                len(self.relays.ports()),
            )
            await stop.wait()
            for task in (heartbeat, serve, *self._tasks):
                task.cancel()
            await asyncio.gather(heartbeat, serve, *self._tasks, return_exceptions=True)
        finally:
            # Kernels are left running: a new agent re-attaches them (restart without losing memory).
            self.sandbox.close()
            self.packages.close()
            self.relays.stop()
            control.close(linger=0)
            self._events.close(linger=0)
            auth.stop()
            context.term()

    def _server_socket(self, actx: zmq.asyncio.Context, kind: int, port: int) -> zmq.asyncio.Socket:
        sock = actx.socket(kind)
        sock.linger = 0
        sock.curve_server = True
        sock.curve_secretkey = self.keypair.secret
        sock.curve_publickey = self.keypair.public
        sock.zap_domain = ZAP_DOMAIN
        sock.maxmsgsize = MAX_REQUEST_BYTES + 1024
        sock.sndhwm = sock.rcvhwm = 1000
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 60)
        sock.bind(f"tcp://{self.settings.bind_host}:{port}")
        return sock

    async def _recover(self) -> None:
        """Re-open the relays of this instance's running containers (on their old ports when recorded) and
        forget the records of containers that are gone."""
        known: set[int] = set()
        for own in await self.sandbox.list_own():
            if own.kernel_id is None:
                continue
            known.add(own.kernel_id)
            if own.exit is None:
                ports = await asyncio.to_thread(self._read_ports, own.kernel_id)
                try:
                    opened = await asyncio.to_thread(
                        self.relays.open, own.kernel_id, self._ipc_base(own.kernel_id), ports
                    )
                    await asyncio.to_thread(self._write_ports, own.kernel_id, opened)
                except Exception:  # e.g. no free port: this kernel stays unreachable, the others are served
                    log.exception("could not re-open the relay of kernel %d", own.kernel_id)
        await self.packages.start_up(known)
        for path in await asyncio.to_thread(lambda: list(self._relay_dir.glob("*.json"))):
            if path.stem.isdigit() and int(path.stem) not in known:
                await asyncio.to_thread(path.unlink, True)
        instance_dir = self.sandbox_settings.instance_dir
        for path in await asyncio.to_thread(lambda: list(instance_dir.iterdir()) if instance_dir.is_dir() else []):
            if path.name.isdigit() and int(path.name) not in known:  # a socket directory without its container
                await asyncio.to_thread(shutil.rmtree, path, True)

    # --- control requests ---------------------------------------------------------------------------------

    async def _handle(self, request: AnyRequest) -> dict[str, Any]:
        if isinstance(request, StartRequest):
            return await self._start(request)
        if isinstance(request, SignalRequest):
            await self._signal(request.kernel_id, request.signal)
            return {}
        if isinstance(request, RemoveContainerRequest):
            await self._remove_container(request.container_id)
            return {}
        if isinstance(request, LogsRequest):
            logs = await self.sandbox.logs(request.kernel_id, request.tail)
            return {"logs": logs[-_MAX_LOG_BYTES:]}
        if isinstance(request, PackagesResolveRequest | PackagesLinkRequest):
            return await self._packages(request)
        if isinstance(request, KernelRequest):
            if request.op == "seal":
                return await self._seal(request.kernel_id)
            if request.op == "status":
                return await self._status(request.kernel_id)
            await self._remove(request.kernel_id)
            return {}
        if request.op == "list":
            return {"kernels": await self._list()}
        if request.op == "capacity":
            return {**self._capacity(), "images": await self.images.present()}
        return {"boot_id": self.boot_id}

    async def _start(self, request: StartRequest) -> dict[str, Any]:
        kernel_id = request.kernel_id
        runtime = request.runtime or self.sandbox_settings.runtime
        if runtime not in self.sandbox_settings.runtimes:
            raise AgentError("bad_request", f"runtime {runtime!r} is not allowed on this node")
        if request.pool and (request.runtime or request.env):
            raise AgentError("bad_request", "a pool kernel has the deployment's profile: no runtime or env")
        image = await self._image(request)
        if kernel_id in self._starting or kernel_id in self.relays.ports():
            raise AgentError("conflict", f"kernel {kernel_id} already exists on this node")
        if self._kernel_count() >= self.settings.max_kernels:
            raise AgentError("capacity", f"this node runs its maximum of {self.settings.max_kernels} kernels")
        self._starting.add(kernel_id)
        socket_dir = self._socket_dir(kernel_id)
        made_dir = False
        try:
            info = {**new_connection_info(), "key": request.key}
            try:
                await asyncio.to_thread(prepare_socket_dir, socket_dir, info, self.sandbox_settings.kernel_uid)
            except FileExistsError:
                raise AgentError("conflict", f"kernel {kernel_id} already has a socket directory here") from None
            made_dir = True
            ports = await asyncio.to_thread(self.relays.open, kernel_id, self._ipc_base(kernel_id))
            container_id = await self.sandbox.create_container(
                kernel_id, socket_dir, None if request.pool else runtime, None if request.pool else request.env,
                jupyter_id=request.jupyter_id, pooled=request.pool, image=image,
            )  # fmt: skip
            await asyncio.to_thread(self._write_ports, kernel_id, ports)
            made_dir = False
            return {"container_id": container_id, "ports": ports}
        finally:
            self._starting.discard(kernel_id)
            if made_dir:  # failed after making it: leave nothing behind
                await asyncio.shield(self._remove(kernel_id))

    async def _image(self, request: StartRequest) -> str | None:
        """The image to start (None: the deployment's), from this agent's own allow-list only, and in the engine
        (an image is never pulled)."""
        try:
            image = self.images.choose(request.image, pool=request.pool)
            if image is not None:
                await self.images.require(image)
        except ImageRefused as error:
            raise AgentError("bad_request", str(error)) from None
        except ImageMissing as error:
            raise AgentError("start_failed", str(error)) from None
        return image

    async def _packages(self, request: PackagesRequest) -> dict[str, Any]:
        """A ``packages_*`` request (``gateway.agent.packages``) about one of this node's running kernels."""
        if request.kernel_id not in self.relays.ports():
            raise AgentError("not_found", f"kernel {request.kernel_id} is not running on this node")
        return await self.packages.answer(request, self.sandbox.container_name(request.kernel_id))

    def _kernel_count(self) -> int:
        """Kernels running or starting here (a starting one has its relay open already: counted once)."""
        return len(self._starting | set(self.relays.ports()))

    async def _signal(self, kernel_id: int, signal: str) -> None:
        """Signal the kernel's container; gone or not running is fine."""
        await self.sandbox.signal(kernel_id, signal)

    async def _seal(self, kernel_id: int) -> dict[str, Any]:
        try:
            await asyncio.to_thread(seal_socket_dir, self._socket_dir(kernel_id))
        except FileNotFoundError:
            raise AgentError("not_found", f"kernel {kernel_id} is not on this node") from None
        return {}

    async def _status(self, kernel_id: int) -> dict[str, Any]:
        ended = await self.sandbox.exit_status(kernel_id)
        return {"running": ended is None, **self._exit(ended), "relay": kernel_id in self.relays.ports()}

    def _exit(self, ended: ContainerExit | None) -> dict[str, Any]:
        if ended is None:
            return {"exit_code": None, "oom_killed": False, "cause": None, "gone": False}
        return {
            "exit_code": ended.exit_code,
            "oom_killed": ended.oom_killed,
            "cause": ended.describe(self.sandbox.spec.mem_limit_mb),
            "gone": ended.exit_code is None,
        }

    async def _remove(self, kernel_id: int) -> None:
        """Close the relay, remove the container, its socket directory and its record. Idempotent."""
        await asyncio.to_thread(self.relays.close, kernel_id)
        await self.sandbox.remove(kernel_id)
        await asyncio.to_thread(shutil.rmtree, self._socket_dir(kernel_id), True)
        await asyncio.to_thread((self._relay_dir / f"{kernel_id}.json").unlink, True)
        await self.packages.remove(kernel_id)

    async def _remove_container(self, container_id: str) -> None:
        """Remove a container of this instance by id (with its kernel's relay and files when it is a kernel's
        own container). Not one of ours, or gone: nothing to do."""
        for own in await self.sandbox.list_own():
            if own.container_id.startswith(container_id):
                if own.kernel_id is not None and own.name == self.sandbox.container_name(own.kernel_id):
                    await self._remove(own.kernel_id)
                else:
                    await self.sandbox.remove_container(own.container_id)
                return

    async def _list(self) -> list[dict[str, Any]]:
        relays = self.relays.ports()
        return [
            {
                "kernel_id": own.kernel_id,
                "container_id": own.container_id,
                "running": own.exit is None,
                **self._exit(own.exit),
                "ports": relays.get(own.kernel_id) if own.kernel_id is not None else None,
            }
            for own in await self.sandbox.list_own()
        ]

    def _capacity(self) -> dict[str, Any]:
        return {
            "node": self.settings.node_name,
            "boot_id": self.boot_id,
            "agent_version": AGENT_VERSION,
            "protocol": PROTOCOL_VERSION,
            "events_port": self.settings.events_port,
            **self._node,
            "kernels": len(set(self.relays.ports()) - self._starting),
            "starting": len(self._starting),
            "max_kernels": self.settings.max_kernels,
            "runtimes": list(self.sandbox_settings.runtimes),
            "limits": asdict(self.sandbox.spec),
        }

    # --- events -------------------------------------------------------------------------------------------

    def _publish(self, topic: bytes, body: dict[str, Any]) -> None:
        if self._events is None:
            return
        self._seq += 1
        message = json.dumps(
            {"seq": self._seq, "boot_id": self.boot_id, "node": self.settings.node_name, "time": time.time(), **body}
        ).encode()
        with contextlib.suppress(zmq.ZMQError):
            self._events.send_multipart([topic, message], flags=zmq.NOBLOCK)

    async def _heartbeats(self) -> None:
        while True:
            self._publish(b"heartbeat", {"kernels": self._kernel_count()})
            await asyncio.sleep(self.settings.heartbeat_interval)

    def _on_death(self, kernel_id: int, container_id: str) -> None:
        task = asyncio.create_task(self._report_death(kernel_id, container_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report_death(self, kernel_id: int, container_id: str) -> None:
        try:
            ended = await self.sandbox.exit_status(kernel_id)
        except SandboxUnavailable:
            ended = ContainerExit(exit_code=None, oom_killed=False)
        if ended is None:  # already replaced by a new container of the same kernel
            return
        self._publish(b"death", {"kernel_id": kernel_id, "container_id": container_id, **self._exit(ended)})

    def _on_resumed(self) -> None:
        """The engine's event stream broke and was followed again: deaths may have been missed."""
        self._publish(b"resync", {})

    # --- paths --------------------------------------------------------------------------------------------

    def _socket_dir(self, kernel_id: int) -> Path:
        return self.sandbox_settings.instance_dir / str(kernel_id)

    def _ipc_base(self, kernel_id: int) -> str:
        return str(self._socket_dir(kernel_id) / SOCKET_PREFIX)

    def _read_ports(self, kernel_id: int) -> dict[str, int] | None:
        try:
            data = json.loads((self._relay_dir / f"{kernel_id}.json").read_text())
            return {str(k): int(v) for k, v in data["ports"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write_ports(self, kernel_id: int, ports: dict[str, int]) -> None:
        path = self._relay_dir / f"{kernel_id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"ports": ports}))
        os.replace(temporary, path)
