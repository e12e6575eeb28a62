"""Websocket framing, checked against jupyter_server's own (de)serializers."""

from __future__ import annotations

import json
import struct

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from gateway.protocol.wire import V1_PROTOCOL, BadFrame, decode, encode


def _msg(**content: object) -> dict:
    return {
        "header": {"msg_id": "m1", "msg_type": "execute_request", "session": "s", "username": "u", "version": "5.3"},
        "parent_header": {},
        "metadata": {},
        "content": dict(content),
        "buffers": [],
    }


def test_legacy_text_frame_from_a_client() -> None:
    frame = json.dumps({**_msg(code="1+1"), "channel": "shell"})
    channel, msg = decode(frame, None)
    assert channel == "shell"
    assert msg["header"]["msg_type"] == "execute_request"
    assert msg["content"] == {"code": "1+1"}
    assert msg["buffers"] == []


def test_legacy_binary_frame_from_a_client_as_jupyter_server_builds_it() -> None:
    msg = {**_msg(comm_id="c"), "channel": "shell", "buffers": [b"\x00\x01", b"abc"]}
    channel, decoded = decode(serialize_binary_message(msg), None)
    assert channel == "shell"
    assert decoded["buffers"] == [b"\x00\x01", b"abc"]
    assert decoded["content"] == {"comm_id": "c"}


def test_v1_frame_from_a_client_as_jupyter_server_builds_it() -> None:
    msg = _msg(code="print(1)")
    frame = serialize_msg_to_ws_v1(msg, "control", lambda part: json.dumps(part).encode())
    channel, decoded = decode(frame, V1_PROTOCOL)
    assert channel == "control"
    assert decoded["content"] == {"code": "print(1)"}
    assert decoded["header"]["msg_id"] == "m1"


def test_encoding_for_a_legacy_client() -> None:
    text = encode("iopub", _msg(name="stdout", text="hi"), None)
    assert isinstance(text, str)
    body = json.loads(text)
    assert body["channel"] == "iopub"
    assert body["msg_type"] == "execute_request" and body["msg_id"] == "m1"
    assert body["content"] == {"name": "stdout", "text": "hi"}

    with_buffers = encode("iopub", {**_msg(), "buffers": [b"xyz"]}, None)
    assert isinstance(with_buffers, bytes)
    decoded = deserialize_binary_message(with_buffers)
    assert decoded["channel"] == "iopub" and decoded["buffers"] == [b"xyz"]


def test_encoding_for_a_v1_client() -> None:
    frame = encode("shell", {**_msg(status="ok"), "buffers": [b"b1"]}, V1_PROTOCOL)
    channel, parts = deserialize_msg_from_ws_v1(frame)
    assert channel == "shell"
    assert json.loads(parts[3]) == {"status": "ok"}
    assert parts[4] == b"b1"


@pytest.mark.parametrize(
    ("frame", "protocol", "problem"),
    [
        ("not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        (json.dumps({**_msg(), "channel": "hb"}), None, "unknown channel"),
        (json.dumps({**_msg(), "channel": "shell", "header": {"msg_type": "x"}}), None, "msg_id"),
        (json.dumps({**_msg(), "channel": "shell", "content": [1]}), None, "content must be an object"),
        (b"\x00\x00\x00\x02\x00\x00\x00\x0c\x00\x00\xff\xff{}", None, "offsets"),
        (b"abc", None, "too short"),
        ("text", V1_PROTOCOL, "binary frames only"),
        ((3).to_bytes(8, "little") + bytes(24), V1_PROTOCOL, "offset count"),
    ],
)
def test_malformed_frames_are_refused_with_a_reason(frame: str | bytes, protocol: str | None, problem: str) -> None:
    with pytest.raises(BadFrame, match=problem):
        decode(frame, protocol)


def test_offsets_past_the_end_are_refused() -> None:
    frame = struct.pack("!II", 1, 8) + b"{}"
    assert decode(struct.pack("!II", 1, 8) + json.dumps({**_msg(), "channel": "shell"}).encode(), None)[0] == "shell"
    with pytest.raises(BadFrame):
        decode(struct.pack("!III", 2, 12, 10_000) + b"{}", None)
    with pytest.raises(BadFrame, match="JSON"):
        decode(frame[:-1], None)
