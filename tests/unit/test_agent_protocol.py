"""The agent's control protocol: what parses, what is refused and how, and how replies map to errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.agent.client import AgentRefused, _unwrap
from gateway.agent.keys import create_keys, load_allowed_keys, load_keypair
from gateway.agent.protocol import MAX_REQUEST_BYTES, BadRequest, StartRequest, error_reply, ok_reply, parse_request
from gateway.agent.server import Agent
from gateway.agent.settings import AgentSettings
from gateway.errors import KernelStartFailed, SandboxUnavailable
from gateway.settings import Settings


def frame(**body: object) -> bytes:
    return json.dumps({"v": 1, "id": "r1", **body}).encode()


def test_a_start_request_parses_with_its_defaults() -> None:
    request = parse_request(frame(op="start", kernel_id=12, key="ab" * 32))
    assert isinstance(request, StartRequest)
    assert (request.kernel_id, request.runtime, request.env, request.pool) == (12, None, {}, False)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[" * 50_000, "not JSON"),
        (frame(op="rm -rf"), "op"),
        (frame(op="ping", extra=1), "extra"),
        (frame(op="start", kernel_id=0, key="ab" * 32), "kernel_id"),
        (frame(op="start", kernel_id=2**53, key="ab" * 32), "kernel_id"),
        (frame(op="start", kernel_id=1, key="not hex"), "key"),
        (frame(op="start", kernel_id=1, key="ab" * 32, env={"A B": "x"}), "env"),
        (frame(op="start", kernel_id=1, key="ab" * 32, env={"A": "x" * 5000}), "env"),
        (frame(op="logs", kernel_id=1, tail=10**6), "tail"),
        (frame(op="signal", kernel_id=1, signal="SIGSTOP"), "signal"),
        (json.dumps({"v": 2, "id": "r1", "op": "ping"}).encode(), "v"),
        (b"x" * (MAX_REQUEST_BYTES + 1), "larger"),
    ],
)
def test_bad_requests_are_refused_saying_what_is_wrong(raw: bytes, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        parse_request(raw)


def test_the_request_id_is_kept_for_the_error_reply_when_it_can_be_read() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(frame(op="nope"))
    assert caught.value.request_id == "r1"
    with pytest.raises(BadRequest) as caught:
        parse_request(json.dumps({"id": ["x"], "op": "ping"}).encode())
    assert caught.value.request_id is None


def test_replies_map_to_the_gateways_errors() -> None:
    assert _unwrap(json.loads(ok_reply("a", {"x": 1}))) == {"x": 1}
    with pytest.raises(KernelStartFailed, match="no image"):
        _unwrap(json.loads(error_reply("a", "start_failed", "no image")))
    with pytest.raises(SandboxUnavailable):
        _unwrap(json.loads(error_reply("a", "unavailable", "engine down")))
    with pytest.raises(AgentRefused) as caught:
        _unwrap(json.loads(error_reply("a", "capacity", "full")))
    assert caught.value.type == "capacity"
    with pytest.raises(SandboxUnavailable):
        _unwrap({"garbage": True})


def test_keys_round_trip_and_an_allow_list_from_a_file_or_a_directory(tmp_path: Path) -> None:
    paths = create_keys(tmp_path)
    pair = load_keypair(paths["gateway_secret"])
    assert load_allowed_keys(paths["gateway_public"]) == {pair.public}
    assert load_allowed_keys(tmp_path) == {pair.public, load_keypair(paths["agent_secret"]).public}
    with pytest.raises(ValueError, match="no secret key"):
        load_keypair(paths["gateway_public"])


def test_the_agent_refuses_to_be_given_api_keys_or_the_database(tmp_path: Path) -> None:
    paths = create_keys(tmp_path)
    agent_settings = AgentSettings(
        curve_secret_file=paths["agent_secret"], allowed_clients=paths["gateway_public"], state_dir=tmp_path / "s"
    )
    with pytest.raises(ValueError, match="API keys"):
        Agent(agent_settings, Settings(api_keys="a:b"))
    with pytest.raises(ValueError, match="database"):
        Agent(agent_settings, Settings(database_url="postgresql://x@y/z"))
