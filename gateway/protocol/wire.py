"""How one Jupyter message travels in one websocket frame, in both framings jupyter_server defines.

- **legacy** (no subprotocol; what ``jupyter server --gateway-url`` speaks): a text frame holding the message as
  JSON with an added ``channel`` key. A message with binary buffers is a binary frame instead: the number of parts
  and their offsets as 32-bit big-endian integers, then the JSON, then the buffers.
- **v1** (subprotocol ``v1.kernel.websocket.jupyter.org``): always a binary frame: the number of offsets and the
  offsets as 64-bit little-endian integers, then the channel name, header, parent header, metadata, content and
  buffers.

Pure functions, no I/O. A message here is a dict with ``header``, ``parent_header``, ``metadata``, ``content``
(dicts) and ``buffers`` (list of bytes). Frames from clients are untrusted: anything malformed raises ``BadFrame``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from jupyter_client.jsonutil import json_default

from gateway import safe_json

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = frozenset({"shell", "control", "iopub", "stdin"})
_MAX_PARTS = 1024  # header, parent, metadata, content and at most ~1000 buffers
_MAX_JSON_DEPTH = 128  # comm messages carry a library's own JSON (widget state, figures): leave it room


class BadFrame(ValueError):
    """A websocket frame that is not a valid Jupyter message."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False, allow_nan=False).encode()


def _loads(data: bytes | str, what: str) -> Any:
    try:
        return safe_json.loads(data, max_depth=_MAX_JSON_DEPTH)  # issue 10: a depth limit (was json.loads)
    except safe_json.UnsafeJSON as error:
        raise BadFrame(f"{what} is not valid JSON: {error}") from None


def _message(
    channel: Any, header: Any, parent: Any, metadata: Any, content: Any, buffers: list[bytes]
) -> tuple[str, dict[str, Any]]:
    """Check the parts of a client's message and build the message dict."""
    if channel not in CHANNELS:
        raise BadFrame(f"unknown channel {channel!r} (expected one of {', '.join(sorted(CHANNELS))})")
    if not isinstance(header, dict) or not all(isinstance(header.get(k), str) for k in ("msg_id", "msg_type")):
        raise BadFrame("header must be an object with string msg_id and msg_type")
    parts = {"parent_header": parent, "metadata": metadata, "content": content}
    for name, value in parts.items():
        if value is None:
            parts[name] = {}
        elif not isinstance(value, dict):
            raise BadFrame(f"{name} must be an object")
    return channel, {"header": header, **parts, "buffers": buffers}


# --- client -> gateway ------------------------------------------------------------------------------------------


def decode(frame: str | bytes, protocol: str | None) -> tuple[str, dict[str, Any]]:
    """A client's frame as ``(channel, message)``; raises BadFrame if it is not one."""
    if protocol == V1_PROTOCOL:
        if isinstance(frame, str):
            raise BadFrame("the v1 protocol sends binary frames only")
        return _decode_v1(frame)
    if isinstance(frame, str):
        msg = _loads(frame, "message")
        if not isinstance(msg, dict):
            raise BadFrame("message must be a JSON object")
        buffers: list[bytes] = []
    else:
        msg, buffers = _decode_legacy_binary(frame)
    return _message(
        msg.get("channel"),
        msg.get("header"),
        msg.get("parent_header"),
        msg.get("metadata"),
        msg.get("content"),
        buffers,
    )


def _split(frame: bytes, offsets: list[int]) -> list[bytes]:
    if any(b < a for a, b in zip(offsets, offsets[1:], strict=False)) or offsets[-1] > len(frame):
        raise BadFrame("offsets out of order or beyond the frame")
    return [frame[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]


def _decode_legacy_binary(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    if len(frame) < 8:
        raise BadFrame("binary frame too short")
    (count,) = struct.unpack("!I", frame[:4])
    if not 1 <= count <= _MAX_PARTS or len(frame) < 4 * (count + 1):
        raise BadFrame("binary frame has a bad part count")
    offsets = list(struct.unpack(f"!{count}I", frame[4 : 4 * (count + 1)]))
    if offsets[0] < 4 * (count + 1):
        raise BadFrame("offsets out of order or beyond the frame")
    parts = _split(frame, [*offsets, len(frame)])
    msg = _loads(parts[0], "message")
    if not isinstance(msg, dict):
        raise BadFrame("message must be a JSON object")
    return msg, parts[1:]


def _decode_v1(frame: bytes) -> tuple[str, dict[str, Any]]:
    if len(frame) < 8:
        raise BadFrame("binary frame too short")
    count = int.from_bytes(frame[:8], "little")
    if not 6 <= count <= _MAX_PARTS + 2 or len(frame) < 8 * (count + 1):
        raise BadFrame("v1 frame has a bad offset count (needs channel, header, parent, metadata, content)")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    if offsets[0] < 8 * (count + 1):
        raise BadFrame("offsets out of order or beyond the frame")
    channel_bytes, header, parent, metadata, content, *buffers = _split(frame, offsets)
    try:
        channel = channel_bytes.decode()
    except UnicodeDecodeError:
        raise BadFrame("channel name is not UTF-8") from None
    return _message(
        channel,
        _loads(header, "header"),
        _loads(parent, "parent_header"),
        _loads(metadata, "metadata"),
        _loads(content, "content"),
        buffers,
    )


# --- gateway -> client ------------------------------------------------------------------------------------------


def encode(channel: str, msg: dict[str, Any], protocol: str | None) -> str | bytes:
    """The frame that carries ``msg`` (received on ``channel``) to a client speaking ``protocol``."""
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if protocol == V1_PROTOCOL:
        parts = [
            channel.encode(),
            _dumps(msg["header"]),
            _dumps(msg["parent_header"]),
            _dumps(msg["metadata"]),
            _dumps(msg["content"]),
            *buffers,
        ]
        offsets = [8 * (len(parts) + 2)]
        for part in parts:
            offsets.append(offsets[-1] + len(part))
        head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
        return head + b"".join(parts)
    body = {
        "header": msg["header"],
        "msg_id": msg["header"].get("msg_id"),
        "msg_type": msg["header"].get("msg_type"),
        "parent_header": msg["parent_header"],
        "metadata": msg["metadata"],
        "content": msg["content"],
        "buffers": [],
        "channel": channel,
    }
    if not buffers:
        return _dumps(body).decode()
    del body["buffers"]
    parts = [_dumps(body), *buffers]
    offsets = [4 * (len(parts) + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)
