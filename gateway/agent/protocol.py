"""The agent's control protocol, shared by the agent and its clients: request and reply shapes, constants.

A request is one JSON frame ``{"v": 1, "id": "...", "op": "...", ...}`` sent by a DEALER to the agent's ROUTER;
the reply is one JSON frame ``{"v": 1, "id": "...", "ok": {...}}`` or ``{"v": 1, "id": "...", "error": {"type":
..., "message": ...}}``. Events are published as ``[topic, json]`` frames (topics in ``EventTopic``). Every
request is schema-checked: unknown fields, wrong types and out-of-range values are refused with ``bad_request``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
#: ZAP domain of every agent socket; the allow-list is configured for exactly this domain.
ZAP_DOMAIN = b"jupycell"
#: The kernel channels the agent relays, each on its own TCP port.
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
#: Largest control request accepted (bytes); larger frames are refused by the socket itself.
MAX_REQUEST_BYTES = 64 * 1024

ErrorType = Literal["bad_request", "not_found", "conflict", "capacity", "start_failed", "unavailable", "internal"]

KernelId = Annotated[int, Field(ge=1, le=2**53 - 1)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, Field(max_length=4096)]
#: A Docker image reference (name[:tag][@digest]); whether the agent starts it is its own allow-list's call.
ImageName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.:/@-]{0,255}$")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1]
    id: str = Field(min_length=1, max_length=64)


class StartRequest(_Request):
    """Start a kernel container with this HMAC key (the gateway made it); the agent writes the connection file."""

    op: Literal["start"]
    kernel_id: KernelId
    key: str = Field(pattern=r"^[0-9a-f]{32,128}$")
    jupyter_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the container's label, as locally
    runtime: str | None = Field(None, pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=64)
    pool: bool = False
    image: ImageName | None = None  # None: the node's sandbox image; else one on the agent's own allow-list


class KernelRequest(_Request):
    op: Literal["seal", "status", "remove"]
    kernel_id: KernelId


class SignalRequest(_Request):
    """Send a signal to the kernel's process through the engine (interrupt escalation)."""

    op: Literal["signal"]
    kernel_id: KernelId
    signal: Literal["SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]


class LogsRequest(_Request):
    op: Literal["logs"]
    kernel_id: KernelId
    tail: int = Field(40, ge=1, le=1000)


class RemoveContainerRequest(_Request):
    """Remove one of this node's kernel containers by id, whatever its name (a container no gateway knows)."""

    op: Literal["remove_container"]
    container_id: str = Field(pattern=r"^[0-9a-f]{12,64}$")


class NodeRequest(_Request):
    op: Literal["list", "capacity", "ping"]


# --- packages on demand on the kernel's node (gateway.agent.packages; the gateway's side:
# gateway.adapters.agents.packages). Requirements are parsed and checked against the node's policy again there.
Requirement = Annotated[str, Field(min_length=1, max_length=300)]
ProjectName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")]


class PackagesResolveRequest(_Request):
    """``packages_lookup``: the cached resolution of ``requirements`` for the kernel's image; ``packages_fetch``: run
    the fetch helper for them (at most ``max_bytes`` of wheels, none of ``deny``)."""

    op: Literal["packages_lookup", "packages_fetch"]
    kernel_id: KernelId
    requirements: list[Requirement] = Field(min_length=1, max_length=100)
    max_bytes: int = Field(0, ge=0, le=2**40)
    deny: list[ProjectName] = Field(default_factory=list, max_length=1000)


class PackagesLinkRequest(_Request):
    """``packages_link``: link cached wheels into the kernel's wheel directory (its manifest maps each of
    ``requirements`` to them); ``packages_holds``: whether the directory holds them all."""

    op: Literal["packages_link", "packages_holds"]
    kernel_id: KernelId
    wheels: list[dict[str, Any]] = Field(max_length=200)
    requirements: list[Requirement] = Field(default_factory=list, max_length=100)


PackagesRequest = PackagesResolveRequest | PackagesLinkRequest

AnyRequest = (
    StartRequest | KernelRequest | SignalRequest | LogsRequest | RemoveContainerRequest | NodeRequest | PackagesRequest
)
Request = Annotated[AnyRequest, Field(discriminator="op")]
_request_adapter: TypeAdapter[Request] = TypeAdapter(Request)


class BadRequest(Exception):
    """A request that does not parse or fit the schema; ``request_id`` is set when it could be read."""

    def __init__(self, message: str, request_id: str | None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_request(frame: bytes) -> AnyRequest:
    """The request in one frame, or BadRequest saying what is wrong with it."""
    if len(frame) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request of {len(frame)} bytes is larger than {MAX_REQUEST_BYTES}", None)
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        raise BadRequest("request is not JSON", None) from None
    request_id = data.get("id") if isinstance(data, dict) else None
    if not (isinstance(request_id, str) and 0 < len(request_id) <= 64):
        request_id = None
    try:
        return _request_adapter.validate_python(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in error.errors()[:5]
        )
        raise BadRequest(f"invalid request: {problems}", request_id) from None


def ok_reply(request_id: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "id": request_id, "ok": body}).encode()


def error_reply(request_id: str | None, error_type: ErrorType, message: str) -> bytes:
    return json.dumps(
        {"v": PROTOCOL_VERSION, "id": request_id, "error": {"type": error_type, "message": message[:2000]}}
    ).encode()


EventTopic = Literal["death", "heartbeat", "resync"]
EVENT_TOPICS: tuple[bytes, ...] = (b"death", b"heartbeat", b"resync")
