"""The gateway's side of an agent: control requests, the events stream, and Curve clients for relayed kernels.

Every send and every wait is bounded in time: a request that gets no answer within ``timeout`` seconds raises
``SandboxUnavailable`` (the agent is down, unreachable, or refuses our key: Curve gives no other answer), and
requests are never queued for an agent that is not connected (``ZMQ_IMMEDIATE``), so a late agent cannot act on a
request its caller has given up on. Errors the agent reports map to the gateway's own exceptions.

An ``AgentsBackend`` implementing the core's ``SandboxBackend`` port is meant to be a thin layer over
``AgentClient`` (one per agent) and ``AgentEvents``; ``relay_connection_info`` gives the connection info a kernel
client needs, and ``CurveAsyncKernelClient`` / ``CurveBlockingKernelClient`` are jupyter_client's clients with
the gateway's own Curve keypair (jupyter_client alone would reuse the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.blocking import BlockingKernelClient

from gateway.agent.keys import Keypair
from gateway.agent.protocol import CHANNELS, PROTOCOL_VERSION
from gateway.errors import JupyCellError, KernelStartFailed, SandboxUnavailable

log = logging.getLogger(__name__)

_MAX_REPLY_BYTES = 16 * 2**20


@dataclass(frozen=True)
class CurveKeys:
    """What a gateway socket needs to talk to an agent: the agent's public key and the gateway's keypair."""

    server_public: bytes
    client: Keypair


class AgentRefused(JupyCellError):
    """The agent understood the request and refused it (bad request, not found, conflict, capacity)."""

    status_code = 409

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.type = error_type


def curve_socket(context: zmq.Context[Any], kind: int, keys: CurveKeys) -> zmq.Socket[Any]:
    """A Curve client socket for an agent, with keepalive and ZMTP heartbeats (idle links through overlay
    load balancers are cut after 15 min; a dead peer is noticed within seconds)."""
    sock = context.socket(kind)
    sock.linger = 0
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.client.public
    sock.curve_secretkey = keys.client.secret
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 60)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 5000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    return sock


@dataclass(frozen=True)
class StartedKernel:
    container_id: str
    ports: dict[str, int]


class AgentClient:
    """Control requests to one agent at ``tcp://host:port``. Use from one event loop; ``close()`` when done."""

    def __init__(
        self,
        host: str,
        port: int,
        keys: CurveKeys,
        *,
        timeout: float = 10.0,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._context = context or zmq.asyncio.Context.instance()
        self._socket = curve_socket(self._context, zmq.DEALER, keys)
        self._socket.setsockopt(zmq.IMMEDIATE, 1)
        self._socket.maxmsgsize = _MAX_REPLY_BYTES
        self._socket.connect(f"tcp://{host}:{port}")
        self._ids = itertools.count(1)
        self._prefix = f"{time.monotonic_ns():x}-"
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(SandboxUnavailable(f"agent client for {self.host}:{self.port} closed"))
                future.exception()  # retrieved: its request may have been cancelled meanwhile, and never look
        self._socket.close(linger=0)

    async def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and return the agent's ``ok`` body; raises SandboxUnavailable without an answer in
        ``timeout`` seconds, KernelStartFailed / AgentRefused for the agent's errors."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        request_id = self._prefix + str(next(self._ids))
        frame = json.dumps({"v": PROTOCOL_VERSION, "id": request_id, "op": op, **fields}).encode()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                async with self._send_lock:
                    await self._socket.send(frame)
                await future
        except TimeoutError:
            raise SandboxUnavailable(
                f"agent at {self.host}:{self.port} did not answer {op!r} within {limit:g} s "
                "(down, unreachable, or it does not accept this gateway's key)"
            ) from None
        except zmq.ZMQError as error:
            if not future.done():  # else closed while sending: close() has failed the request
                raise SandboxUnavailable(f"agent at {self.host}:{self.port}: {op!r} not sent ({error})") from None
        finally:
            self._waiting.pop(request_id, None)
        return _unwrap(future.result())

    async def _read(self) -> None:
        while True:
            try:
                frame = await self._socket.recv()
                reply = json.loads(frame)
                future = self._waiting.get(reply.get("id")) if isinstance(reply, dict) else None
            except zmq.ZMQError:
                if self._socket.closed:
                    return
                continue
            except ValueError:
                continue
            if future is not None and not future.done():
                future.set_result(reply)

    # --- the operations -----------------------------------------------------------------------------------

    async def start(
        self,
        kernel_id: int,
        key: str,
        *,
        runtime: str | None = None,
        env: dict[str, str] | None = None,
        pool: bool = False,
        timeout: float | None = None,
        jupyter_id: str | None = None,
        image: str | None = None,
    ) -> StartedKernel:
        """``image``: one of the agent's allowed images (None: its sandbox image). ``jupyter_id``: the container's
        label. Both are sent only when set (an agent of the version before them accepts the request)."""
        extra = {name: value for name, value in (("image", image), ("jupyter_id", jupyter_id)) if value is not None}
        body = await self.request(
            "start", timeout, kernel_id=kernel_id, key=key, runtime=runtime, env=env or {}, pool=pool, **extra
        )
        return StartedKernel(str(body["container_id"]), {c: int(body["ports"][c]) for c in CHANNELS})

    async def signal(self, kernel_id: int, signal: str) -> None:
        """Signal the kernel's process (SIGINT, SIGTERM, SIGKILL, ...); a kernel not running is fine."""
        await self.request("signal", kernel_id=kernel_id, signal=signal)

    async def seal(self, kernel_id: int) -> None:
        await self.request("seal", kernel_id=kernel_id)

    async def status(self, kernel_id: int) -> dict[str, Any]:
        """``{running, exit_code, oom_killed, cause, gone, relay}``."""
        return await self.request("status", kernel_id=kernel_id)

    async def logs(self, kernel_id: int, tail: int = 40) -> str:
        return str((await self.request("logs", kernel_id=kernel_id, tail=tail))["logs"])

    async def remove(self, kernel_id: int) -> None:
        await self.request("remove", kernel_id=kernel_id)

    async def remove_container(self, container_id: str) -> None:
        """Remove one of the node's kernel containers by id (idempotent)."""
        await self.request("remove_container", container_id=container_id)

    async def list(self) -> list[dict[str, Any]]:
        return list((await self.request("list"))["kernels"])

    async def capacity(self, timeout: float | None = None) -> dict[str, Any]:
        return await self.request("capacity", timeout)

    async def ping(self, timeout: float | None = None) -> str:
        """The agent's boot id (it changes when the agent restarts)."""
        return str((await self.request("ping", timeout))["boot_id"])

    def connection_info(self, key: str, ports: dict[str, int]) -> dict[str, Any]:
        """Connection info for a relayed kernel (give it to a Curve kernel client)."""
        return relay_connection_info(self.host, ports, key)


def _unwrap(reply: dict[str, Any]) -> dict[str, Any]:
    if isinstance(reply.get("ok"), dict):
        return reply["ok"]
    error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    error_type, message = str(error.get("type", "internal")), str(error.get("message", "no message"))
    if error_type == "start_failed":
        raise KernelStartFailed(message)
    if error_type in ("unavailable", "internal"):
        raise SandboxUnavailable(f"agent: {message}")
    raise AgentRefused(error_type, message)


def relay_connection_info(host: str, ports: dict[str, int], key: str) -> dict[str, Any]:
    """jupyter_client connection info for a kernel relayed by the agent at ``host``."""
    return {
        "transport": "tcp",
        "ip": host,
        **{f"{channel}_port": ports[channel] for channel in CHANNELS},
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }


class _CurveSockets:
    """jupyter_client's socket factory with the gateway's Curve keys and a bounded send on shell, IOPub, stdin
    and control (not hb: jupyter_client makes that socket itself, with the server's key; start channels with
    ``hb=False``)."""

    agent_keys: CurveKeys | None = None
    send_timeout_ms: int = 5000

    def _create_connected_socket(self, channel: str, identity: bytes | None = None) -> zmq.Socket[Any]:
        if self.agent_keys is None:
            raise RuntimeError("set agent_keys before starting the channels")
        sock = curve_socket(self.context, zmq.SUB if channel == "iopub" else zmq.DEALER, self.agent_keys)  # type: ignore[attr-defined]
        sock.sndtimeo = self.send_timeout_ms
        if identity:
            sock.identity = identity
        sock.connect(self._make_url(channel))  # type: ignore[attr-defined]
        return sock


class CurveAsyncKernelClient(_CurveSockets, AsyncKernelClient):
    """``AsyncKernelClient`` for a relayed kernel."""


class CurveBlockingKernelClient(_CurveSockets, BlockingKernelClient):
    """``BlockingKernelClient`` for a relayed kernel."""


def kernel_client(
    cls: type[CurveAsyncKernelClient] | type[CurveBlockingKernelClient],
    info: dict[str, Any],
    keys: CurveKeys,
    **kwargs: Any,
) -> Any:
    """A kernel client of ``cls`` loaded with ``info`` and the gateway's keys (channels not started)."""
    client = cls(**kwargs)
    client.agent_keys = keys
    client.load_connection_info(info)
    return client


# --- events -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Death:
    kernel_id: int
    container_id: str
    exit_code: int | None
    oom_killed: bool
    cause: str


class AgentEvents:
    """Follows one agent's events: deaths, heartbeats, resyncs.

    ``on_death(Death)`` for each kernel death; ``on_resync()`` whenever events may have been missed (first
    heartbeat after (re)connecting, a gap in sequence numbers, a new agent boot, the agent's own resync): the
    caller should then ``list`` the agent's kernels. ``on_silent(seconds)`` once the agent has been silent for
    ``silent_after`` seconds (the node may be lost), and again after each later heartbeat and silence. With
    ``node``, only events of that node's agent count (each names its node).
    """

    def __init__(
        self,
        host: str,
        port: int,
        keys: CurveKeys,
        *,
        on_death: Callable[[Death], None],
        on_resync: Callable[[], None],
        on_silent: Callable[[float], None] = lambda seconds: None,
        silent_after: float = 10.0,
        context: zmq.asyncio.Context | None = None,
        node: str | None = None,
    ) -> None:
        self._context = context or zmq.asyncio.Context.instance()
        self._socket = curve_socket(self._context, zmq.SUB, keys)
        self._socket.maxmsgsize = 2**20
        for topic in (b"death", b"heartbeat", b"resync"):
            self._socket.setsockopt(zmq.SUBSCRIBE, topic)
        self._socket.connect(f"tcp://{host}:{port}")
        self._on_death, self._on_resync, self._on_silent = on_death, on_resync, on_silent
        self._silent_after = silent_after
        self._node = node
        self._boot: str | None = None
        self._seq = 0
        self.last_seen: float | None = None
        self._task = asyncio.create_task(self._follow())

    def close(self) -> None:
        self._task.cancel()
        self._socket.close(linger=0)

    async def _follow(self) -> None:
        silent = False
        while True:
            try:
                async with asyncio.timeout(self._silent_after):
                    frames = await self._socket.recv_multipart()
            except TimeoutError:
                if not silent:
                    silent = True
                    since = time.monotonic() - self.last_seen if self.last_seen else self._silent_after
                    _call(self._on_silent, since)
                continue
            except zmq.ZMQError:
                if self._socket.closed:
                    return
                continue
            event = _event(frames)
            if event is None:
                continue
            topic, body = event
            if self._node is not None and body.get("node") != self._node:
                continue  # another node's agent at this address now (addresses are reused): not a sign of life
            self.last_seen = time.monotonic()
            silent = False
            boot, seq = body.get("boot_id"), body.get("seq")
            if not isinstance(seq, int):
                continue
            missed = boot != self._boot or seq != self._seq + 1
            self._boot, self._seq = boot, seq
            if topic == "death":
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    _call(
                        self._on_death,
                        Death(
                            int(body["kernel_id"]),
                            str(body.get("container_id", "")),
                            body.get("exit_code"),
                            bool(body.get("oom_killed")),
                            str(body.get("cause") or "its container stopped"),
                        ),
                    )
            if missed or topic == "resync":
                _call(self._on_resync)


def _event(frames: list[bytes]) -> tuple[str, dict[str, Any]] | None:
    if len(frames) != 2:
        return None
    try:
        body = json.loads(frames[1])
    except ValueError:
        return None
    topic = frames[0].decode(errors="replace")
    return (topic, body) if isinstance(body, dict) else None


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("agent event callback failed")
