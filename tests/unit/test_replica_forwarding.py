"""Issue 11: which kernel a request names, for the forwarding to its replica (``gateway.api.replicas``): an MCP tool
call by its ``kernel_id`` argument; anything else (malformed, another method, no integer id) is served here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.api.replicas import _BODY_PATHS, _kernel_in_tool_call


def call(arguments: Any, method: str = "tools/call") -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": "x", "arguments": arguments}}
    ).encode()


def test_an_mcp_tool_call_names_its_kernel_argument() -> None:
    assert _kernel_in_tool_call(call({"kernel_id": 42, "code": "1"})) == 42
    assert _BODY_PATHS["/mcp"] is _BODY_PATHS["/mcp/"] is _kernel_in_tool_call


@pytest.mark.parametrize(
    "body",
    [
        call({"code": "1"}),
        call({"kernel_id": "42"}),
        call({"kernel_id": True}),
        call({"kernel_id": 4.2}),
        call(["kernel_id"]),
        call(None),
        call({"kernel_id": 42}, method="tools/list"),
        b'{"method": "tools/call"}',
        b'{"method": "tools/call", "params": 3}',
        b'[{"method": "tools/call", "params": {"arguments": {"kernel_id": 1}}}]',
        b"not json",
        b"",
    ],
)
def test_anything_else_names_no_kernel(body: bytes) -> None:
    assert _kernel_in_tool_call(body) is None
