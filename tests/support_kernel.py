"""Kernel containers driven over raw ZMQ (no gateway), for comparing two kernels message by message.

A ``KernelUnderTest`` is a container of the sandbox image under test (``JUPYCELL_SANDBOX_IMAGE``) started with the
gateway's hardened flags (``bench.raw_floor``), with a jupyter_client ``BlockingKernelClient`` on its shell, IOPub,
stdin and control channels. ``run`` sends one ``execute_request`` and returns everything it produced, normalised
(``normalise``) so two kernels' answers compare equal when a user could not tell them apart.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

from bench.raw_floor import RawFloor, RawKernel

#: Header fields that differ between any two messages (ids, clocks, session, version of the wire protocol's msg).
_VOLATILE_HEADER = ("msg_id", "session", "date", "username", "version")
_TIMINGS = re.compile(r"\d[\d.e+-]*\s*(ns|[µμu]s|ms|s)\b")
_TEMP_FILES = re.compile(r"ipykernel_\d+")
_UUID = re.compile(r"[0-9a-f]{32}")


@dataclass
class CellResult:
    """What one execute request produced, normalised: IOPub messages (in order), stdin requests, the reply."""

    iopub: list[dict[str, Any]] = field(default_factory=list)
    stdin: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)


def scrub(value: Any) -> Any:
    """Strings with timings (``%time``), per-process temp paths and random display ids made comparable."""
    if isinstance(value, str):
        return _UUID.sub("<uuid>", _TEMP_FILES.sub("ipykernel_<pid>", _TIMINGS.sub("<t>", value)))
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    return value


def normalise(msg: dict[str, Any]) -> dict[str, Any]:
    """A message without what differs between any two runs (ids, clocks) but with everything a client reads."""
    header = {k: v for k, v in msg["header"].items() if k not in _VOLATILE_HEADER}
    content = dict(msg["content"])
    if msg["msg_type"] == "execute_reply":
        content.pop("engine_info", None)  # ipykernel's per-process engine uuid
    metadata = {k: v for k, v in msg["metadata"].items() if k not in ("started", "engine")}  # clock, process uuid
    return scrub({"msg_type": msg["msg_type"], "header": header, "content": content, "metadata": metadata})


def merge_streams(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream messages of one stream joined: where text is cut into messages depends on timing."""
    merged: list[dict[str, Any]] = []
    for msg in messages:
        last = merged[-1] if merged else None
        if (
            last is not None
            and msg["msg_type"] == last["msg_type"] == "stream"
            and msg["content"]["name"] == last["content"]["name"]
        ):
            last["content"] = {**last["content"], "text": last["content"]["text"] + msg["content"]["text"]}
        else:
            merged.append(msg)
    return merged


class KernelUnderTest:
    """One kernel container and a client with stdin; ``environment`` picks the launcher (see the image's
    entrypoint: ``JUPYCELL_KERNEL_LAUNCHER=stock`` is ipykernel unconfigured), ``command`` adds options to it."""

    def __init__(
        self, floor: RawFloor, environment: dict[str, str] | None = None, command: list[str] | None = None
    ) -> None:
        self.floor = floor
        self.raw: RawKernel = floor.start(environment, command, stdin=True)[0]
        self.client = self.raw.client

    def close(self) -> None:
        self.floor.stop(self.raw)

    def kernel_info(self) -> dict[str, Any]:
        msg_id = self.client.kernel_info()
        return self.raw._reply(msg_id, 30)

    def send(self, code: str, **options: Any) -> str:
        """Send an execute request (``allow_stdin`` on by default) and return its id."""
        options.setdefault("allow_stdin", True)
        return self.client.execute(code, **options)

    def collect(
        self,
        msg_id: str,
        stdin_replies: list[str] | None = None,
        interrupt_after: str | None = None,
        timeout: float = 60,
        interrupt_at_input: bool = False,
    ) -> CellResult:
        """Read what request ``msg_id`` produced until its ``idle`` and its reply. ``stdin_replies`` answer its
        ``input_request``s in turn; ``interrupt_after``: send an interrupt once this text was printed;
        ``interrupt_at_input``: answer an ``input_request`` with an interrupt instead."""
        result = CellResult()
        replies = list(stdin_replies or [])
        deadline = time.monotonic() + timeout
        printed = ""
        idle = False
        while not idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no idle for {msg_id} within {timeout} s")
            try:
                request = self.client.get_stdin_msg(timeout=0)
            except Empty:
                request = None
            if request is not None:
                result.stdin.append(normalise(request))
                if interrupt_at_input:
                    self.interrupt()
                else:
                    self.client.input(replies.pop(0) if replies else "")
            try:
                msg = self.client.get_iopub_msg(timeout=0.02)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            result.iopub.append(normalise(msg))
            if interrupt_after is not None and msg["msg_type"] == "stream":
                printed += msg["content"]["text"]
                if interrupt_after in printed:
                    self.interrupt()
                    interrupt_after = None
        result.iopub = merge_streams(result.iopub)
        result.reply = normalise(self.raw._reply(msg_id, timeout))
        return result

    def interrupt(self) -> None:
        """An ``interrupt_request`` on the control channel, as the gateway sends it."""
        self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    def run(self, code: str, **options: Any) -> CellResult:
        stdin_replies = options.pop("stdin_replies", None)
        interrupt_after = options.pop("interrupt_after", None)
        interrupt_at_input = options.pop("interrupt_at_input", False)
        msg_id = self.send(code, **options)
        return self.collect(msg_id, stdin_replies, interrupt_after, interrupt_at_input=interrupt_at_input)
